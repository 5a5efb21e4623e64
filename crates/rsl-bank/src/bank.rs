//! The bank: the application's replicated state, as an rsl [`StateMachine`].
//!
//! Requests are text lines, so the example reads without a codec: `open ACCOUNT AMOUNT`,
//! `transfer FROM TO AMOUNT` (replicated), and `balance ACCOUNT`, `digest` (reads). Every
//! replica executes the same requests in the same order, so every replica holds the same
//! balances at the same slot; money is neither made nor lost by a transfer, so the total is
//! the sum of the amounts opened, whatever crashed.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

use bytes::Bytes;
use rsl::{Snapshot, StateMachine};

/// Balances by account name.
#[derive(Debug, Default, Clone)]
pub struct Bank {
    accounts: BTreeMap<String, i64>,
}

impl Bank {
    /// Applies one request; the answer goes back to whoever proposed it.
    fn apply(&mut self, request: &str) -> String {
        let words: Vec<&str> = request.split_whitespace().collect();
        match words.as_slice() {
            ["open", account, amount] => match amount.parse::<i64>() {
                Ok(amount) if amount >= 0 && !self.accounts.contains_key(*account) => {
                    self.accounts.insert(account.to_string(), amount);
                    format!("opened {account} {amount}")
                }
                Ok(_) => format!("refused: {account} exists or the amount is negative"),
                Err(_) => "refused: amount is not a number".to_string(),
            },
            ["transfer", from, to, amount] => self.transfer(from, to, amount),
            _ => format!("refused: unknown request {request:?}"),
        }
    }

    fn transfer(&mut self, from: &str, to: &str, amount: &str) -> String {
        let Ok(amount) = amount.parse::<i64>() else {
            return "refused: amount is not a number".to_string();
        };
        let (Some(&have), true) = (self.accounts.get(from), self.accounts.contains_key(to)) else {
            return "refused: no such account".to_string();
        };
        if amount <= 0 || have < amount || from == to {
            return format!("refused: {from} has {have}");
        }
        *self.accounts.get_mut(from).expect("checked") -= amount;
        *self.accounts.get_mut(to).expect("checked") += amount;
        format!("moved {amount} from {from} to {to}")
    }

    /// Every balance in one line, `name=balance` in name order: equal digests, equal states.
    pub fn digest(&self) -> String {
        let balances: Vec<String> =
            self.accounts.iter().map(|(name, balance)| format!("{name}={balance}")).collect();
        let total: i64 = self.accounts.values().sum();
        format!("total={total} {}", balances.join(" "))
    }
}

impl StateMachine for Bank {
    fn execute(&mut self, slot: u64, request: &[u8]) -> Bytes {
        let answer = self.apply(&String::from_utf8_lossy(request));
        // The slot goes back with the answer, so a caller can later read "at least here".
        Bytes::from(format!("slot={slot} {answer}"))
    }

    fn read(&self, request: &[u8]) -> Bytes {
        let request = String::from_utf8_lossy(request);
        match request.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["balance", account] => match self.accounts.get(*account) {
                Some(balance) => Bytes::from(balance.to_string()),
                None => Bytes::from_static(b"no such account"),
            },
            ["digest"] => Bytes::from(self.digest()),
            _ => Bytes::from(format!("unknown read {request:?}")),
        }
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        // A copy is cheap for a handful of accounts; a large state would keep a persistent
        // map (as rsl-kv does with `imbl`) so the snapshot costs O(1) on the consensus path.
        Box::new(self.clone())
    }

    fn load_checkpoint(&mut self, input: &mut dyn io::Read) -> io::Result<()> {
        self.accounts.clear();
        for line in io::BufReader::new(input).lines() {
            let line = line?;
            let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad line {line:?}"));
            let (name, balance) = line.split_once(' ').ok_or_else(bad)?;
            self.accounts.insert(name.to_string(), balance.parse().map_err(|_| bad())?);
        }
        Ok(())
    }
}

impl Snapshot for Bank {
    fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        for (name, balance) in &self.accounts {
            writeln!(out, "{name} {balance}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_keep_the_total_and_refuse_overdrafts() {
        let mut bank = Bank::default();
        bank.apply("open alice 100");
        bank.apply("open bob 0");
        assert_eq!(bank.apply("transfer alice bob 30"), "moved 30 from alice to bob");
        assert_eq!(bank.apply("transfer bob alice 31"), "refused: bob has 30");
        assert_eq!(bank.apply("open alice 5"), "refused: alice exists or the amount is negative");
        assert_eq!(bank.digest(), "total=100 alice=70 bob=30");
    }

    #[test]
    fn a_checkpoint_loads_back_the_same_state() {
        let mut bank = Bank::default();
        bank.apply("open alice 100");
        bank.apply("open bob 7");
        bank.apply("transfer alice bob 1");
        let mut bytes = Vec::new();
        bank.write_to(&mut bytes).unwrap();
        let mut loaded = Bank::default();
        loaded.load_checkpoint(&mut &bytes[..]).unwrap();
        assert_eq!(loaded.digest(), bank.digest());
        assert!(loaded.load_checkpoint(&mut &b"alice x\n"[..]).is_err());
    }
}
