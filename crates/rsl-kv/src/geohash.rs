//! The geometry of Redis's geo commands: a position as a 52-bit interleaved geohash (the score
//! of a member of a sorted set), the haversine distance, and the nine cells a radius or box
//! search scans.
//!
//! Every step is Redis 7.0's arithmetic, written here from its description, so that scores,
//! positions, distances and the cells a search scans (and so which members a search finds, and
//! in which order) are the ones redis-server answers. Only `sin`, `cos` and `asin` are not
//! plain IEEE arithmetic: they are the platform C library's (Rust's `f64` methods call glibc's,
//! as Redis does), because a pure-Rust port (the `libm` crate) rounds 3-6% of its results to
//! the other neighbouring double, which changes STOREDIST scores and, at a radius's edge,
//! which members a search finds. So replicas compute the same distances when they run the
//! same binary on the same C library; a replica on another libm (or another version of it)
//! could store a distance that differs in its last bit.

/// The longitudes a position may have.
pub const LON_MIN: f64 = -180.0;
/// See [`LON_MIN`].
pub const LON_MAX: f64 = 180.0;
/// The latitudes a position may have: the square of Web Mercator's projection.
pub const LAT_MIN: f64 = -85.05112878;
/// See [`LAT_MIN`].
pub const LAT_MAX: f64 = 85.05112878;
/// Bits per coordinate in a score (52 bits in all).
pub const STEP_MAX: u8 = 26;
/// The Earth's radius Redis uses, in meters.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;
/// Half the Earth's circumference in Web Mercator, in meters (the step estimate's scale).
const MERCATOR_MAX_M: f64 = 20037726.37;
/// Degrees to radians, as Redis computes the factor (`M_PI / 180.0`).
const DEG_TO_RAD: f64 = std::f64::consts::PI / 180.0;

/// A geohash cell: `step` bits of each coordinate, interleaved (latitude in the even bits,
/// longitude in the odd ones). A zero hash (`step` 0) is a cell excluded from a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hash {
    /// The interleaved bits.
    pub bits: u64,
    /// Bits per coordinate.
    pub step: u8,
}

impl Hash {
    fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The scores of the cell's positions: `min <= score < max`.
    pub fn score_range(self) -> (u64, u64) {
        let shift = 52 - 2 * u32::from(self.step);
        (self.bits << shift, (self.bits + 1) << shift)
    }
}

/// A closed interval of one coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// The lower end.
    pub min: f64,
    /// The upper end.
    pub max: f64,
}

/// The longitudes and latitudes of a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    /// Its longitudes.
    pub lon: Range,
    /// Its latitudes.
    pub lat: Range,
}

const LON_RANGE: Range = Range { min: LON_MIN, max: LON_MAX };
const LAT_RANGE: Range = Range { min: LAT_MIN, max: LAT_MAX };
/// The standard geohash's latitudes (GEOHASH's strings).
const LAT_RANGE_STANDARD: Range = Range { min: -90.0, max: 90.0 };

/// Whether a longitude and latitude may be stored (GEOADD's check).
pub fn valid(lon: f64, lat: f64) -> bool {
    (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat)
}

/// Spreads the 32 bits of `x` over the even bits of a `u64`.
fn spread(x: u32) -> u64 {
    let mut x = u64::from(x);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `x` into 32 bits.
fn squash(x: u64) -> u32 {
    let mut x = x & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// The cell of `step` bits holding a position within `lon_range` and `lat_range`; `None`
/// outside them (or outside the storable square).
fn encode(lon_range: Range, lat_range: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    assert!((1..=32).contains(&step), "a geohash step is 1 to 32 bits");
    if !valid(lon, lat)
        || !(lat_range.min..=lat_range.max).contains(&lat)
        || !(lon_range.min..=lon_range.max).contains(&lon)
    {
        return None;
    }
    let cells = (1u64 << step) as f64;
    let lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min) * cells;
    let lon_offset = (lon - lon_range.min) / (lon_range.max - lon_range.min) * cells;
    // Truncation toward zero, as C's conversion: a coordinate at its range's maximum gives
    // 2^step, one past the last cell, which Redis keeps too.
    let bits = spread(lat_offset as u32) | (spread(lon_offset as u32) << 1);
    Some(Hash { bits, step })
}

/// The area of a cell; `None` for a zero hash.
fn decode(lon_range: Range, lat_range: Range, hash: Hash) -> Option<Area> {
    if hash.is_zero() {
        return None;
    }
    let cells = (1u64 << hash.step) as f64;
    let lat_cell = squash(hash.bits);
    let lon_cell = squash(hash.bits >> 1);
    let lat_scale = lat_range.max - lat_range.min;
    let lon_scale = lon_range.max - lon_range.min;
    // `cell + 1` wraps in 32 bits as Redis's `uint32_t` does (only for garbage scores).
    let at = |min: f64, cell: u32, scale: f64| min + (f64::from(cell) * 1.0 / cells) * scale;
    Some(Area {
        lat: Range {
            min: at(lat_range.min, lat_cell, lat_scale),
            max: at(lat_range.min, lat_cell.wrapping_add(1), lat_scale),
        },
        lon: Range {
            min: at(lon_range.min, lon_cell, lon_scale),
            max: at(lon_range.min, lon_cell.wrapping_add(1), lon_scale),
        },
    })
}

/// The score of a position: its 52-bit geohash as an integer. `None` outside the square.
pub fn encode_score(lon: f64, lat: f64) -> Option<u64> {
    let hash = encode(LON_RANGE, LAT_RANGE, lon, lat, STEP_MAX)?;
    Some(hash.score_range().0)
}

/// The bits of a score, converted as redis-server on x86-64 converts a double to `uint64_t`
/// (what C leaves undefined for a score that is not a geohash: a negative one wraps, one of
/// 2^64 or more, or an infinity, gives 0, -inf gives 2^63).
pub fn score_bits(score: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    // x86-64's truncating conversion answers i64::MIN for anything it cannot represent.
    let truncate = |x: f64| if (-TWO_63..TWO_63).contains(&x) { x as i64 } else { i64::MIN };
    if score < TWO_63 {
        truncate(score) as u64
    } else {
        (truncate(score - TWO_63) as u64) ^ (1 << 63)
    }
}

/// A score as an integer, as redis-server on x86-64 converts a double to `long long`
/// (WITHHASH).
pub fn score_integer(score: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_63..TWO_63).contains(&score) {
        score as i64
    } else {
        i64::MIN
    }
}

/// The position (longitude, latitude) a score stands for: its cell's centre, kept within
/// the square. Any score decodes (Redis decodes whatever a ZADD stored).
pub fn decode_score(score: f64) -> (f64, f64) {
    let hash = Hash { bits: score_bits(score), step: STEP_MAX };
    let area = decode(LON_RANGE, LAT_RANGE, hash).expect("a step-26 hash is never zero");
    let lon = ((area.lon.min + area.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The standard 11-character geohash of a score's position (GEOHASH): the position
/// re-encoded with latitudes -90 to 90, 52 bits in ten characters and a last `0`.
pub fn standard_geohash(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score);
    let bits = encode(LON_RANGE, LAT_RANGE_STANDARD, lon, lat, STEP_MAX)
        .expect("a decoded position is within the square")
        .bits;
    let mut text = [b'0'; 11];
    for (i, c) in text.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    text
}

fn deg_rad(degrees: f64) -> f64 {
    degrees * DEG_TO_RAD
}

fn rad_deg(radians: f64) -> f64 {
    radians / DEG_TO_RAD
}

/// The distance in meters between two latitudes on one meridian.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// The haversine distance in meters between two positions.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = f64::sin((deg_rad(lon2) - deg_rad(lon1)) / 2.0);
    if v == 0.0 {
        // On one meridian the formula reduces to the latitudes' difference, as Redis has it.
        return lat_distance(lat1, lat2);
    }
    let (lat1, lat2) = (deg_rad(lat1), deg_rad(lat2));
    let u = f64::sin((lat2 - lat1) / 2.0);
    let a = u * u + f64::cos(lat1) * f64::cos(lat2) * v * v;
    2.0 * EARTH_RADIUS_M * f64::asin(a.sqrt())
}

/// A search's shape around its centre, in meters once multiplied by `to_meters`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// BYRADIUS.
    Radius(f64),
    /// BYBOX: width and height.
    Box(f64, f64),
}

/// A search: its centre, shape and unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    /// The centre's longitude.
    pub lon: f64,
    /// The centre's latitude.
    pub lat: f64,
    /// The shape, in the unit.
    pub shape: Shape,
    /// Meters per unit.
    pub to_meters: f64,
}

impl Search {
    /// The distance in meters from the centre to a position, if the position is within the
    /// shape.
    pub fn within(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.shape {
            Shape::Radius(radius) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= radius * self.to_meters).then_some(d)
            }
            Shape::Box(width, height) => {
                let (width, height) = (width * self.to_meters, height * self.to_meters);
                // The latitude first: it is the cheaper test (Redis's order, which decides
                // nothing but the work done).
                if lat_distance(lat, self.lat) > height / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > width / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }

    /// The bounding box of the shape: min lon, min lat, max lon, max lat.
    fn bounds(&self) -> [f64; 4] {
        let (half_height, half_width) = match self.shape {
            Shape::Radius(r) => (r, r),
            Shape::Box(w, h) => (h / 2.0, w / 2.0),
        };
        let (height, width) = (self.to_meters * half_height, self.to_meters * half_width);
        let lat_delta = rad_deg(height / EARTH_RADIUS_M);
        let lon_delta_top =
            rad_deg(width / EARTH_RADIUS_M / f64::cos(deg_rad(self.lat + lat_delta)));
        let lon_delta_bottom =
            rad_deg(width / EARTH_RADIUS_M / f64::cos(deg_rad(self.lat - lat_delta)));
        // The box is widest on its side nearer the equator.
        let lon_delta = if self.lat < 0.0 { lon_delta_bottom } else { lon_delta_top };
        [self.lon - lon_delta, self.lat - lat_delta, self.lon + lon_delta, self.lat + lat_delta]
    }

    /// The cells to scan, in Redis's order (the centre's cell, then north, south, east, west,
    /// north-east, north-west, south-east, south-west); a zero hash is a cell left out.
    pub fn cells(&self) -> [Hash; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius_m = self.to_meters
            * match self.shape {
                Shape::Radius(r) => r,
                Shape::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
            };
        let mut step = estimate_step(radius_m, self.lat);
        let centre = |step| {
            let hash = encode(LON_RANGE, LAT_RANGE, self.lon, self.lat, step)
                .expect("a search's centre is within the square");
            let area = decode(LON_RANGE, LAT_RANGE, hash).expect("a centre's cell is not zero");
            (hash, neighbours(hash), area)
        };
        let (mut hash, mut n, mut area) = centre(step);
        // Near a cell's edge the estimated step may leave part of the box uncovered by the
        // neighbours: one step coarser then.
        let side = |h: Hash| decode(LON_RANGE, LAT_RANGE, h).expect("a neighbour is not zero");
        let too_fine = side(n[NORTH]).lat.max < max_lat
            || side(n[SOUTH]).lat.min > min_lat
            || side(n[EAST]).lon.max < max_lon
            || side(n[WEST]).lon.min > min_lon;
        if step > 1 && too_fine {
            step -= 1;
            (hash, n, area) = centre(step);
        }
        if step >= 2 {
            let mut drop = |cells: [usize; 3]| cells.iter().for_each(|&c| n[c] = Hash::default());
            if area.lat.min < min_lat {
                drop([SOUTH, SOUTH_WEST, SOUTH_EAST]);
            }
            if area.lat.max > max_lat {
                drop([NORTH, NORTH_EAST, NORTH_WEST]);
            }
            if area.lon.min < min_lon {
                drop([WEST, SOUTH_WEST, NORTH_WEST]);
            }
            if area.lon.max > max_lon {
                drop([EAST, SOUTH_EAST, NORTH_EAST]);
            }
        }
        [
            hash,
            n[NORTH],
            n[SOUTH],
            n[EAST],
            n[WEST],
            n[NORTH_EAST],
            n[NORTH_WEST],
            n[SOUTH_EAST],
            n[SOUTH_WEST],
        ]
    }
}

const NORTH: usize = 0;
const SOUTH: usize = 1;
const EAST: usize = 2;
const WEST: usize = 3;
const NORTH_EAST: usize = 4;
const NORTH_WEST: usize = 5;
const SOUTH_EAST: usize = 6;
const SOUTH_WEST: usize = 7;

/// The coarsest step whose cells still cover a radius (Redis's estimate).
fn estimate_step(mut radius_m: f64, lat: f64) -> u8 {
    if radius_m == 0.0 {
        return STEP_MAX;
    }
    let mut step: i32 = 1;
    while radius_m < MERCATOR_MAX_M {
        radius_m *= 2.0;
        step += 1;
    }
    step -= 2;
    // Cells narrow toward the poles: coarser there.
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, i32::from(STEP_MAX)) as u8
}

/// Moves a cell `dx` cells east (or west) and `dy` north (or south), wrapping around.
fn shift(hash: Hash, dx: i8, dy: i8) -> Hash {
    let width = 64 - 2 * u32::from(hash.step);
    let (odd, even) = (0xAAAA_AAAA_AAAA_AAAAu64, 0x5555_5555_5555_5555u64);
    // Moving one coordinate: the other's bits are set so that a carry crosses them.
    let add = |bits: u64, own: u64, other: u64, d: i8| -> u64 {
        let mut c = bits & own;
        let fill = other >> width;
        if d > 0 {
            c = c.wrapping_add(fill + 1);
        } else {
            c = (c | fill).wrapping_sub(fill + 1);
        }
        c & (own >> width)
    };
    let mut bits = hash.bits;
    if dx != 0 {
        bits = add(bits, odd, even, dx) | (bits & even);
    }
    if dy != 0 {
        bits = (bits & odd) | add(bits, even, odd, dy);
    }
    Hash { bits, step: hash.step }
}

/// The eight neighbours of a cell, indexed by `NORTH`...`SOUTH_WEST`.
fn neighbours(hash: Hash) -> [Hash; 8] {
    let mut n = [hash; 8];
    for (i, (dx, dy)) in [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1)]
        .into_iter()
        .enumerate()
    {
        n[i] = shift(hash, dx, dy);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Figures from redis-server 7.0.15 (redis-cli, 2026-12-06): GEOADD of Palermo and
    /// Catania, their scores, GEOHASH strings and distance, and what GEOPOS answers for
    /// scores that are no geohash.
    #[test]
    fn scores_positions_hashes_and_distances_are_redis_7s() {
        let palermo = encode_score(13.361389, 38.115556).unwrap();
        assert_eq!(palermo, 3479099956230698);
        let catania = encode_score(15.087269, 37.502669).unwrap() as f64;
        assert_eq!(&standard_geohash(palermo as f64), b"sqc8b49rny0");
        assert_eq!(&standard_geohash(catania), b"sqdtr74hyu0");
        let (lon, lat) = decode_score(palermo as f64);
        assert_eq!(format!("{lon:.17} {lat:.17}"), "13.36138933897018433 38.11555639549629859");
        let (lon2, lat2) = decode_score(catania);
        assert_eq!(format!("{:.4}", distance(lon, lat, lon2, lat2) / 1000.0), "166.2742");
        assert_eq!(decode_score(-1.0), (180.0, LAT_MAX));
        assert_eq!(format!("{:.17}", decode_score(2.5).0), "-179.99999195337295532");
        assert_eq!(decode_score(f64::INFINITY), decode_score(0.0));
        assert_eq!(decode_score(1e300), decode_score(0.0));
        assert_eq!(decode_score(f64::NEG_INFINITY).0, 180.0);
        assert_eq!(decode_score(4503599627370496.0).1, LAT_MAX);
        assert_eq!(&standard_geohash(-1.0), b"bp05b5048p0");
        assert_eq!(&standard_geohash(4503599627370495.0), b"zzpgzgpfxz0");
    }

    #[test]
    fn positions_outside_the_square_have_no_score() {
        assert!(encode_score(180.0, LAT_MAX).is_some());
        assert!(encode_score(180.000001, 0.0).is_none());
        assert!(encode_score(0.0, -85.06).is_none());
    }

    #[test]
    fn neighbours_are_the_adjacent_cells_and_wrap() {
        let h = Hash { bits: spread(5) | (spread(9) << 1), step: 4 };
        let at = |h: Hash| (squash(h.bits >> 1), squash(h.bits));
        let n = neighbours(h);
        assert_eq!(at(n[NORTH]), (9, 6));
        assert_eq!(at(n[SOUTH]), (9, 4));
        assert_eq!(at(n[EAST]), (10, 5));
        assert_eq!(at(n[WEST]), (8, 5));
        assert_eq!(at(n[SOUTH_WEST]), (8, 4));
        let corner = Hash { bits: spread(15) | (spread(0) << 1), step: 4 };
        assert_eq!(at(neighbours(corner)[NORTH_WEST]), (15, 0));
    }

    #[test]
    fn the_step_follows_the_radius_and_the_latitude() {
        assert_eq!(estimate_step(0.0, 0.0), STEP_MAX);
        assert_eq!(estimate_step(1.0, 0.0), 24);
        assert_eq!(estimate_step(5000.0, 0.0), 11);
        assert_eq!(estimate_step(5000.0, 70.0), 10);
        assert_eq!(estimate_step(5000.0, -85.0), 9);
        assert_eq!(estimate_step(1e9, 0.0), 1);
    }
}
