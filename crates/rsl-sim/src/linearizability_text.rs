//! A history as text, one operation a line: what `rsl-sim --dump-history` writes, and what
//! turns a seed's history into a unit test (`linearizability_search_tests.rs`).

use super::{Observed, Operation};
use crate::kv::{Fingerprint, Op, Output};

/// Writes a history and the values its reads returned as text, one operation a line
/// (`client call ret op key argument output`, `-` for an unknown return or output; a read's
/// value as its tokens, `v:` then comma-separated), for [`parse_history`] to read back: a
/// history the search struggles with becomes a test (`rsl-sim --seed S --dump-history F`).
pub fn write_history(history: &[Operation], observed: &Observed) -> String {
    let mut out = String::new();
    for o in history {
        let ret = o.ret.map_or_else(|| "-".to_string(), |t| t.to_string());
        let (name, key, argument) = match o.op {
            Op::Put { key, token } => ("put", key, token.to_string()),
            Op::Append { key, token } => ("append", key, token.to_string()),
            Op::Get { key } => ("get", key, "-".to_string()),
        };
        let output = match o.output {
            None => "-".to_string(),
            Some(Output::Ok) => "ok".to_string(),
            Some(Output::Len(n)) => n.to_string(),
            Some(Output::Value(f)) => {
                let tokens = observed.values.get(&f).expect("a read's value is observed");
                let tokens: Vec<String> = tokens.iter().map(u64::to_string).collect();
                format!("v:{}", tokens.join(","))
            }
        };
        out += &format!("{} {} {ret} {name} {key} {argument} {output}\n", o.client, o.call);
    }
    out
}

/// Reads back what [`write_history`] wrote.
pub fn parse_history(text: &str) -> Result<(Vec<Operation>, Observed), String> {
    let mut history = Vec::new();
    let mut observed = Observed::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [client, call, ret, name, key, argument, output] = fields[..] else {
            return Err(bad("expected 7 fields"));
        };
        let number = |s: &str| s.parse::<u64>().map_err(|_| bad("bad number"));
        let key = key.parse::<u8>().map_err(|_| bad("bad key"))?;
        let op = match name {
            "put" => Op::Put { key, token: number(argument)? },
            "append" => Op::Append { key, token: number(argument)? },
            "get" => Op::Get { key },
            _ => return Err(bad("unknown operation")),
        };
        let output = match (name, output) {
            (_, "-") => None,
            ("put", "ok") => Some(Output::Ok),
            ("append", len) => Some(Output::Len(len.parse().map_err(|_| bad("bad length"))?)),
            ("get", value) => {
                let tokens = value.strip_prefix("v:").ok_or_else(|| bad("bad value"))?;
                let tokens: Vec<u64> = match tokens {
                    "" => Vec::new(),
                    t => t.split(',').map(number).collect::<Result<_, _>>()?,
                };
                observed.add(&tokens);
                Some(Output::Value(Fingerprint::of(&tokens)))
            }
            _ => return Err(bad("bad output")),
        };
        let ret = match ret {
            "-" => None,
            t => Some(number(t)?),
        };
        let client = client.parse::<u32>().map_err(|_| bad("bad client"))?;
        history.push(Operation { client, op, call: number(call)?, ret, output });
    }
    Ok((history, observed))
}
