//! The differential test's geo commands: GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH,
//! GEOSEARCHSTORE, GEORADIUS and GEORADIUSBYMEMBER (and `_RO`) on the `g` keys, which the
//! sorted-set commands here also write and read (ZADD of geohash-like and arbitrary scores,
//! ZRANGE WITHSCORES of stored distances), and on the `z` keys, whose scores are no geohash.
//!
//! Positions are realistic: around a few cities (the equator, the southern hemisphere, the
//! date line, the Arctic), each a random offset of up to half a degree in steps of 10^-6
//! degree; members of the `z` keys and those ZADD gives small scores sit at nearly one point
//! (equal distances, whose order under COUNT is Redis's partial sort's). Radii go from 0 to
//! thousands of kilometres, where cells coincide.

use super::{key, Rng, MEMBERS, SCORES};

/// Longitude and latitude of the places members gather around.
const PLACES: &[(f64, f64)] = &[
    (13.361389, 38.115556),   // Palermo
    (15.087269, 37.502669),   // Catania
    (2.352200, 48.856600),    // Paris
    (151.209300, -33.868800), // Sydney
    (-78.467800, -0.180700),  // Quito, on the equator
    (179.700000, -16.500000), // Fiji, by the date line
    (-62.350000, 82.500000),  // Alert, in the Arctic
    (-21.942600, 64.146600),  // Reykjavik
];

fn geo_key(rng: &mut Rng) -> String {
    match rng.below(20) {
        0 => key(rng, "z"),
        1 => key(rng, "s"),
        _ => format!("g{}", rng.below(3)),
    }
}

fn member(rng: &mut Rng) -> String {
    if rng.chance(85) {
        rng.pick(MEMBERS).to_string()
    } else {
        format!("m{}", rng.below(12))
    }
}

/// A longitude and latitude near a place, sometimes invalid or malformed.
fn lon_lat(rng: &mut Rng) -> [String; 2] {
    match rng.below(40) {
        0 => return [rng.pick(&["181", "-180.5", "x", "inf"]).into(), "10".into()],
        1 => return ["10".into(), rng.pick(&["85.06", "-86", "90", "y", "nan"]).into()],
        2 => {
            return [
                rng.pick(&["180", "-180", "0"]).into(),
                rng.pick(&["85.05112878", "-85.05112878", "0"]).into(),
            ]
        }
        _ => {}
    }
    let (lon, lat) = PLACES[rng.below(PLACES.len())];
    let offset = |rng: &mut Rng| (rng.next() % 1_000_001) as f64 / 1e6 - 0.5;
    let lon = (lon + offset(rng)).clamp(-180.0, 180.0);
    let lat = lat + offset(rng);
    [format!("{lon:.6}"), format!("{lat:.6}")]
}

fn unit(rng: &mut Rng) -> &'static str {
    rng.pick(&["m", "km", "km", "ft", "mi", "M", "KM", "yd"])
}

/// A distance in the unit: from 0 to thousands of kilometres.
fn distance(rng: &mut Rng, unit: &str) -> String {
    if rng.chance(3) {
        return rng.pick(&["-1", "x", "0"]).into();
    }
    let meters = 10f64.powf((rng.next() % 7001) as f64 / 1000.0);
    let scale = match unit.to_ascii_lowercase().as_str() {
        "km" => 1000.0,
        "ft" => 0.3048,
        "mi" => 1609.34,
        _ => 1.0,
    };
    let value = meters / scale;
    if rng.chance(50) {
        format!("{:.0}", value.max(1.0))
    } else {
        format!("{value:.3}")
    }
}

/// The options of a search after its centre and shape, in a random order.
fn search_options(rng: &mut Rng, c: &mut Vec<String>, store: bool) {
    let mut options: Vec<Vec<String>> = Vec::new();
    if rng.chance(60) {
        options.push(vec![rng.pick(&["ASC", "DESC", "asc"]).into()]);
    }
    if rng.chance(40) {
        let mut count =
            vec!["COUNT".into(), rng.pick(&["1", "2", "3", "5", "0", "-1", "x"]).into()];
        if rng.chance(30) {
            count.push("ANY".into());
        }
        options.push(count);
    } else if rng.chance(3) {
        options.push(vec!["ANY".into()]);
    }
    if !store || rng.chance(3) {
        for with in ["WITHDIST", "WITHHASH", "WITHCOORD"] {
            if rng.chance(35) {
                options.push(vec![with.into()]);
            }
        }
    }
    if rng.chance(2) {
        options.push(vec![rng.pick(&["STORE", "FROM", "BYRADIUS"]).into()]);
    }
    while !options.is_empty() {
        let i = rng.below(options.len());
        c.extend(options.swap_remove(i));
    }
}

/// GEOSEARCH's centre and shape (sometimes missing, doubled or malformed).
fn from_and_by(rng: &mut Rng) -> Vec<Vec<String>> {
    let mut parts = Vec::new();
    let from = |rng: &mut Rng| -> Vec<String> {
        if rng.chance(50) {
            vec!["FROMMEMBER".into(), member(rng)]
        } else {
            let [lon, lat] = lon_lat(rng);
            vec!["FROMLONLAT".into(), lon, lat]
        }
    };
    let by = |rng: &mut Rng| -> Vec<String> {
        let u = unit(rng);
        if rng.chance(50) {
            vec!["BYRADIUS".into(), distance(rng, u), u.into()]
        } else {
            vec!["BYBOX".into(), distance(rng, u), distance(rng, u), u.into()]
        }
    };
    if !rng.chance(3) {
        parts.push(from(rng));
    }
    if !rng.chance(3) {
        parts.push(by(rng));
    }
    if rng.chance(3) {
        parts.push(from(rng));
    }
    if rng.chance(3) {
        parts.push(by(rng));
    }
    if rng.chance(30) {
        parts.reverse();
    }
    parts
}

/// One geo command, or a sorted-set command on a geo key.
pub fn geo_command(rng: &mut Rng) -> Vec<String> {
    let k = geo_key(rng);
    match rng.below(22) {
        0..=4 => {
            let mut c = vec!["GEOADD".into(), k];
            for option in ["NX", "XX", "CH"] {
                if rng.chance(10) {
                    c.push(option.into());
                }
            }
            for _ in 0..1 + rng.below(3) {
                c.extend(lon_lat(rng));
                c.push(member(rng));
            }
            if rng.chance(3) {
                c.pop();
            }
            c
        }
        5 | 6 => {
            let mut c = vec!["GEOPOS".into(), k];
            (0..1 + rng.below(3)).for_each(|_| c.push(member(rng)));
            c
        }
        7 | 8 => {
            let mut c = vec!["GEODIST".into(), k, member(rng), member(rng)];
            if rng.chance(70) {
                c.push(unit(rng).into());
            }
            if rng.chance(3) {
                c.push("km".into());
            }
            c
        }
        9 => {
            let mut c = vec!["GEOHASH".into(), k];
            (0..1 + rng.below(3)).for_each(|_| c.push(member(rng)));
            c
        }
        10..=12 => {
            let mut c = vec!["GEOSEARCH".into(), k];
            from_and_by(rng).into_iter().for_each(|p| c.extend(p));
            search_options(rng, &mut c, false);
            c
        }
        13 | 14 => {
            let dst = if rng.chance(80) { format!("gs{}", rng.below(2)) } else { geo_key(rng) };
            let mut c = vec!["GEOSEARCHSTORE".into(), dst, k];
            from_and_by(rng).into_iter().for_each(|p| c.extend(p));
            search_options(rng, &mut c, true);
            if rng.chance(50) {
                c.push("STOREDIST".into());
            }
            c
        }
        15 | 16 => {
            let by_member = rng.chance(50);
            let ro = rng.chance(40);
            let name = match (by_member, ro) {
                (false, false) => "GEORADIUS",
                (false, true) => "GEORADIUS_RO",
                (true, false) => "GEORADIUSBYMEMBER",
                (true, true) => "GEORADIUSBYMEMBER_RO",
            };
            let mut c = vec![name.into(), k];
            if by_member {
                c.push(member(rng));
            } else {
                c.extend(lon_lat(rng));
            }
            let u = unit(rng);
            c.extend([distance(rng, u), u.into()]);
            let store = !ro && rng.chance(40);
            search_options(rng, &mut c, store);
            if store || rng.chance(3) {
                c.extend([rng.pick(&["STORE", "STOREDIST"]).into(), format!("gs{}", rng.below(2))]);
            }
            c
        }
        17 => {
            // Geohash-like scores (some past 52 bits) and sorted-set scores on a geo key.
            let score = match rng.below(4) {
                0 => rng.pick(SCORES).to_string(),
                1 => (rng.next() % (1 << 53)).to_string(),
                _ => (rng.next() % (1 << 52)).to_string(),
            };
            vec!["ZADD".into(), k, score, member(rng)]
        }
        18 => vec!["ZREM".into(), k, member(rng)],
        19 => vec!["ZSCORE".into(), k, member(rng)],
        _ => {
            let k = if rng.chance(50) { format!("gs{}", rng.below(2)) } else { k };
            vec!["ZRANGE".into(), k, "0".into(), "-1".into(), "WITHSCORES".into()]
        }
    }
}
