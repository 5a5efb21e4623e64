//! Geo commands over sorted sets: GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH,
//! GEOSEARCHSTORE, GEORADIUS and GEORADIUSBYMEMBER (and their `_RO` forms).
//!
//! A position is a member whose score is its 52-bit geohash ([`crate::geohash`]), so geo keys
//! are sorted sets and every sorted-set command works on them, as in Redis. Replies, error
//! texts, the order of checks, the cells a search scans and the order it finds members in are
//! Redis 7.0's, down to the order of members at equal distances (its partial sort, in
//! [`geo_sort`](super::geo_sort), when COUNT keeps fewer than were found).

use bytes::Bytes;

use super::geo_sort::partial_sort;
use super::zsets::zadd;
use super::{flags, View, FLAG_MOVABLEKEYS, K1};
use super::{float_arg, int_arg, is, read, syntax, write, CmdResult, CommandDef, Ctx};
use crate::geohash::{self, Search, Shape};
use crate::resp::Reply;
use crate::value::{Score, Value, ZSet};

pub(super) const COMMANDS: &[CommandDef] = &[
    write("geoadd", -5, K1, geoadd),
    read("geopos", -2, K1, geopos),
    read("geodist", -4, K1, geodist),
    read("geohash", -2, K1, geohash_strings),
    read("geosearch", -7, K1, geosearch),
    write("geosearchstore", -8, (1, 2, 1), geosearchstore),
    flags(write("georadius", -6, K1, georadius), FLAG_MOVABLEKEYS),
    read("georadius_ro", -6, K1, georadius_ro),
    flags(write("georadiusbymember", -5, K1, georadius), FLAG_MOVABLEKEYS),
    read("georadiusbymember_ro", -5, K1, georadius_ro),
];

/// A longitude and a latitude, or Redis's errors.
fn position(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Reply> {
    let (lon, lat) = (float_arg(lon)?, float_arg(lat)?);
    if !geohash::valid(lon, lat) {
        return Err(Reply::error(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}")));
    }
    Ok((lon, lat))
}

/// Meters per unit, or Redis's error.
fn unit(arg: &[u8]) -> Result<f64, Reply> {
    match () {
        _ if is(arg, "m") => Ok(1.0),
        _ if is(arg, "km") => Ok(1000.0),
        _ if is(arg, "ft") => Ok(0.3048),
        _ if is(arg, "mi") => Ok(1609.34),
        _ => Err(Reply::error("ERR unsupported unit provided. please use M, KM, FT, MI")),
    }
}

/// A float argument, or `ERR <message>` (Redis's `getDoubleFromObjectOrReply` with a message).
fn float_or(arg: &[u8], message: &str) -> Result<f64, Reply> {
    super::parse_float(arg).ok_or_else(|| Reply::error(format!("ERR {message}")))
}

/// A distance and its unit (BYRADIUS, GEORADIUS).
fn radius(args: &[Bytes]) -> Result<(f64, f64), Reply> {
    let r = float_or(&args[0], "need numeric radius")?;
    if r < 0.0 {
        return Err(Reply::error("ERR radius cannot be negative"));
    }
    Ok((r, unit(&args[1])?))
}

/// A distance as Redis answers one: a bulk string with 4 decimals.
fn distance_reply(meters: f64) -> Reply {
    Reply::bulk(format!("{meters:.4}").as_bytes())
}

fn geoadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    let mut first = 2;
    while first < args.len() {
        match () {
            _ if is(&args[first], "nx") => nx = true,
            _ if is(&args[first], "xx") => xx = true,
            _ if is(&args[first], "ch") => {}
            _ => break,
        }
        first += 1;
    }
    if !(args.len() - first).is_multiple_of(3) || (nx && xx) {
        return Err(syntax());
    }
    // GEOADD is ZADD with each position's geohash as its score, as in Redis.
    let mut zadd_args: Vec<Bytes> = vec![Bytes::from_static(b"zadd")];
    zadd_args.extend_from_slice(&args[1..first]);
    for triple in args[first..].chunks_exact(3) {
        let (lon, lat) = position(&triple[0], &triple[1])?;
        let score = geohash::encode_score(lon, lat).expect("a valid position has a geohash");
        zadd_args.push(Bytes::from(score.to_string()));
        zadd_args.push(triple[2].clone());
    }
    zadd(ctx, &zadd_args)
}

/// The live sorted set at `key`, or WRONGTYPE.
fn zset<'a>(view: &View<'a>, key: &[u8]) -> Result<Option<&'a ZSet>, Reply> {
    view.zset(key)
}

fn geopos(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let z = zset(view, &args[1])?;
    let positions = args[2..].iter().map(|member| match z.and_then(|z| z.score(member)) {
        None => Reply::NullArray,
        Some(score) => {
            let (lon, lat) = geohash::decode_score(score);
            Reply::Array(vec![Reply::HumanDouble(lon), Reply::HumanDouble(lat)])
        }
    });
    Ok(Reply::Array(positions.collect()))
}

fn geodist(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let to_meters = match args.len() {
        4 => 1.0,
        5 => unit(&args[4])?,
        _ => return Err(syntax()),
    };
    let Some(z) = zset(view, &args[1])? else { return Ok(Reply::Null) };
    let (Some(a), Some(b)) = (z.score(&args[2]), z.score(&args[3])) else {
        return Ok(Reply::Null);
    };
    let ((lon1, lat1), (lon2, lat2)) = (geohash::decode_score(a), geohash::decode_score(b));
    Ok(distance_reply(geohash::distance(lon1, lat1, lon2, lat2) / to_meters))
}

fn geohash_strings(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    let z = zset(view, &args[1])?;
    let hashes = args[2..].iter().map(|member| match z.and_then(|z| z.score(member)) {
        None => Reply::Null,
        Some(score) => Reply::bulk(&geohash::standard_geohash(score)),
    });
    Ok(Reply::Array(hashes.collect()))
}

/// Which command parses its arguments.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// GEOSEARCH or GEOSEARCHSTORE (`store`).
    Search { store: bool },
    /// GEORADIUS[_RO] (`by_member` false) or GEORADIUSBYMEMBER[_RO]; `store` if STORE is
    /// allowed.
    Radius { by_member: bool, store: bool },
}

/// Where a search's results go.
enum Target {
    /// Answered to the client, with these parts.
    Reply { dist: bool, hash: bool, coord: bool },
    /// Stored at a key, scored by the distance or the geohash.
    Store { key: Bytes, dist: bool },
}

/// One member found.
struct Found {
    member: Bytes,
    score: f64,
    lon: f64,
    lat: f64,
    meters: f64,
}

/// A parsed search: `None` as its shape when the source key is missing (Redis then parses the
/// remaining options and answers empty).
struct Parsed {
    search: Option<Search>,
    target: Target,
    sort: Option<bool>,
    count: usize,
    any: bool,
}

/// The argument at `i`, if there are `more` arguments after it (Redis's `i + more <
/// remaining`).
fn has(args: &[Bytes], i: usize, more: usize) -> bool {
    i + more < args.len()
}

/// Parses a search in Redis's order of checks: the source's type, the centre and shape of
/// GEORADIUS, then the options in order, then their combinations.
fn parse<'a>(
    view: &View<'a>,
    args: &[Bytes],
    form: Form,
) -> Result<(Parsed, Option<&'a ZSet>), Reply> {
    let source = if matches!(form, Form::Search { store: true }) { &args[2] } else { &args[1] };
    let z = zset(view, source)?;
    let member_centre = |member: &[u8]| -> Result<(f64, f64), Reply> {
        let z = z.expect("a member is looked up in an existing key");
        let score = z
            .score(member)
            .ok_or_else(|| Reply::error("ERR could not decode requested zset member"))?;
        Ok(geohash::decode_score(score))
    };
    let (mut centre, mut shape, mut to_meters) = (None, None, 1.0);
    let mut store: Option<(Bytes, bool)> = None;
    let first = match form {
        Form::Radius { by_member: false, .. } => {
            centre = Some(position(&args[2], &args[3])?);
            let (r, m) = radius(&args[4..6])?;
            (shape, to_meters) = (Some(Shape::Radius(r)), m);
            6
        }
        Form::Radius { by_member: true, .. } => {
            if z.is_some() {
                centre = Some(member_centre(&args[2])?);
                let (r, m) = radius(&args[3..5])?;
                (shape, to_meters) = (Some(Shape::Radius(r)), m);
            }
            5
        }
        Form::Search { store: true } => {
            store = Some((args[1].clone(), false));
            3
        }
        Form::Search { store: false } => 2,
    };
    let searching = matches!(form, Form::Search { .. });
    let (mut dist, mut hash, mut coord, mut any) = (false, false, false, false);
    let (mut sort, mut count) = (None, 0usize);
    let (mut from_member, mut from_lonlat, mut by_radius, mut by_box) =
        (false, false, false, false);
    let rest = &args[first..];
    let mut i = 0;
    while i < rest.len() {
        let arg = &rest[i];
        match () {
            _ if is(arg, "withdist") => dist = true,
            _ if is(arg, "withhash") => hash = true,
            _ if is(arg, "withcoord") => coord = true,
            _ if is(arg, "any") => any = true,
            _ if is(arg, "asc") => sort = Some(true),
            _ if is(arg, "desc") => sort = Some(false),
            _ if is(arg, "count") && has(rest, i, 1) => {
                let n = int_arg(&rest[i + 1])?;
                if n <= 0 {
                    return Err(Reply::error("ERR COUNT must be > 0"));
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
                i += 1;
            }
            _ if (is(arg, "store") || is(arg, "storedist"))
                && has(rest, i, 1)
                && matches!(form, Form::Radius { store: true, .. }) =>
            {
                store = Some((rest[i + 1].clone(), is(arg, "storedist")));
                i += 1;
            }
            _ if is(arg, "storedist") && matches!(form, Form::Search { store: true }) => {
                store = Some((args[1].clone(), true));
            }
            _ if is(arg, "frommember") && has(rest, i, 1) && searching && !from_lonlat => {
                if z.is_some() {
                    centre = Some(member_centre(&rest[i + 1])?);
                }
                from_member = true;
                i += 1;
            }
            _ if is(arg, "fromlonlat") && has(rest, i, 2) && searching && !from_member => {
                centre = Some(position(&rest[i + 1], &rest[i + 2])?);
                from_lonlat = true;
                i += 2;
            }
            _ if is(arg, "byradius") && has(rest, i, 2) && searching && !by_box => {
                let (r, m) = radius(&rest[i + 1..i + 3])?;
                (shape, to_meters) = (Some(Shape::Radius(r)), m);
                by_radius = true;
                i += 2;
            }
            _ if is(arg, "bybox") && has(rest, i, 3) && searching && !by_radius => {
                let width = float_or(&rest[i + 1], "need numeric width")?;
                let height = float_or(&rest[i + 2], "need numeric height")?;
                if height < 0.0 || width < 0.0 {
                    return Err(Reply::error("ERR height or width cannot be negative"));
                }
                (shape, to_meters) = (Some(Shape::Box(width, height)), unit(&rest[i + 3])?);
                by_box = true;
                i += 3;
            }
            _ => return Err(syntax()),
        }
        i += 1;
    }
    let name = String::from_utf8_lossy(&args[0]);
    if store.is_some() && (dist || hash || coord) {
        let what = if matches!(form, Form::Search { .. }) {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(Reply::error(format!(
            "ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    if searching && !(from_member || from_lonlat) {
        return Err(Reply::error(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if searching && !(by_radius || by_box) {
        return Err(Reply::error(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(Reply::error("ERR the ANY argument requires COUNT argument"));
    }
    let search = match (z, centre, shape) {
        (Some(_), Some((lon, lat)), Some(shape)) => Some(Search { lon, lat, shape, to_meters }),
        _ => None,
    };
    let target = match store {
        Some((key, dist)) => Target::Store { key, dist },
        None => Target::Reply { dist, hash, coord },
    };
    Ok((Parsed { search, target, sort, count, any }, z))
}

/// The members of `z` within the search, in Redis's order: cell by cell, each cell in score
/// order, stopping at `limit` members (0: none).
fn find(z: &ZSet, search: &Search, limit: usize) -> Vec<Found> {
    let cells = search.cells();
    let mut found = Vec::new();
    let mut last = None;
    for (i, cell) in cells.iter().enumerate() {
        if cell.bits == 0 && cell.step == 0 {
            continue;
        }
        // A huge radius makes neighbours coincide: a cell equal to the one scanned last is
        // skipped (only that one, and never after the centre's, as Redis does).
        if let Some(last) = last.filter(|&l| l != 0) {
            if cells[last] == *cell {
                continue;
            }
        }
        if limit != 0 && found.len() >= limit {
            break;
        }
        let (min, max) = cell.score_range();
        let range = (Score(min as f64), Bytes::new())..(Score(max as f64), Bytes::new());
        for (score, member) in z.order.range(range) {
            let (lon, lat) = geohash::decode_score(score.0);
            if let Some(meters) = search.within(lon, lat) {
                found.push(Found { member: member.clone(), score: score.0, lon, lat, meters });
            }
            if limit != 0 && found.len() >= limit {
                break;
            }
        }
        last = Some(i);
    }
    found
}

/// Runs a parsed search: the members to answer or store, sorted and cut to COUNT.
fn run(parsed: &Parsed, z: &ZSet) -> Vec<Found> {
    let search = parsed.search.as_ref().expect("a search over an existing key");
    let mut found = find(z, search, if parsed.any { parsed.count } else { 0 });
    // COUNT needs an order to take the nearest: ascending unless ANY.
    let sort = parsed.sort.or((parsed.count != 0 && !parsed.any).then_some(true));
    if let Some(ascending) = sort {
        let by_distance = |a: &Found, b: &Found| {
            let order = a.meters.partial_cmp(&b.meters).expect("a distance is never NaN");
            if ascending {
                order
            } else {
                order.reverse()
            }
        };
        if parsed.count != 0 && parsed.count < found.len() {
            partial_sort(&mut found, parsed.count, &by_distance);
        } else {
            // glibc's qsort, which Redis calls to sort them all, is a stable merge sort.
            found.sort_by(by_distance);
        }
    }
    if parsed.count != 0 {
        found.truncate(parsed.count);
    }
    for f in &mut found {
        f.meters /= search.to_meters;
    }
    found
}

/// The reply of a search answered to the client.
fn answer(found: Vec<Found>, dist: bool, hash: bool, coord: bool) -> Reply {
    let items = found.into_iter().map(|f| {
        if !(dist || hash || coord) {
            return Reply::Bulk(f.member);
        }
        let mut item = vec![Reply::Bulk(f.member)];
        if dist {
            item.push(distance_reply(f.meters));
        }
        if hash {
            item.push(Reply::Integer(geohash::score_integer(f.score)));
        }
        if coord {
            item.push(Reply::Array(vec![Reply::HumanDouble(f.lon), Reply::HumanDouble(f.lat)]));
        }
        Reply::Array(item)
    });
    Reply::Array(items.collect())
}

/// A search that only reads: GEOSEARCH and the `_RO` forms.
fn search_read(view: &View<'_>, args: &[Bytes], form: Form) -> CmdResult {
    let (parsed, z) = parse(view, args, form)?;
    let (Some(z), Target::Reply { dist, hash, coord }) = (z, &parsed.target) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let (dist, hash, coord) = (*dist, *hash, *coord);
    Ok(answer(run(&parsed, z), dist, hash, coord))
}

/// A search that may store: GEOSEARCHSTORE, GEORADIUS and GEORADIUSBYMEMBER.
fn search_write(ctx: &mut Ctx<'_>, args: &[Bytes], form: Form) -> CmdResult {
    let view = ctx.view();
    let (parsed, z) = parse(&view, args, form)?;
    let found = z.map(|z| run(&parsed, z)).unwrap_or_default();
    let (key, by_dist) = match parsed.target {
        Target::Reply { dist, hash, coord } => return Ok(answer(found, dist, hash, coord)),
        Target::Store { key, dist } => (key, dist),
    };
    let stored = found.len() as i64;
    let mut result = ZSet::default();
    for f in found {
        result.insert(f.member, if by_dist { f.meters } else { f.score });
    }
    ctx.db.remove(&key);
    if !result.is_empty() {
        ctx.db.store(key.clone(), Value::ZSet(Box::new(result)), None);
        ctx.ready(&key);
    }
    Ok(Reply::Integer(stored))
}

fn geosearch(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    search_read(view, args, Form::Search { store: false })
}

fn geosearchstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search_write(ctx, args, Form::Search { store: true })
}

/// Whether the command is GEORADIUSBYMEMBER or its `_RO` form.
fn by_member(args: &[Bytes]) -> bool {
    args[0].to_ascii_lowercase().starts_with(b"georadiusbymember")
}

fn georadius(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    search_write(ctx, args, Form::Radius { by_member: by_member(args), store: true })
}

fn georadius_ro(view: &View<'_>, args: &[Bytes]) -> CmdResult {
    search_read(view, args, Form::Radius { by_member: by_member(args), store: false })
}
