//! A location's region: the country its numbers written without a country
//! code are read in. Until someone sets it, it is the country of the
//! location's time zone.

mod zones;

/// The region when a time zone names no country (`UTC`, `Etc/GMT+5`): the
/// column's default, kept as it always was.
pub const FALLBACK_REGION: &str = "US";

/// The ISO 3166 country of an IANA time zone (`Europe/London` → `GB`),
/// links included (`US/Eastern`, `Asia/Calcutta`); `None` for zones of no
/// country.
pub fn region_of_zone(zone: &str) -> Option<&'static str> {
    zones::ZONE_COUNTRY
        .binary_search_by(|(z, _)| (*z).cmp(zone.trim()))
        .ok()
        .map(|i| zones::ZONE_COUNTRY[i].1)
}

/// The region a new location in `zone` starts with.
pub fn default_region_for(zone: &str) -> &'static str {
    region_of_zone(zone).unwrap_or(FALLBACK_REGION)
}

/// A region phone numbers can be read in (an ISO code libphonenumber
/// knows), upper-cased; `None` otherwise.
pub fn parse_region(input: &str) -> Option<String> {
    let code = input.trim().to_ascii_uppercase();
    let known = code.len() == 2
        && code.chars().all(|c| c.is_ascii_uppercase())
        && phonenumber::metadata::DATABASE
            .by_id(code.as_str())
            .is_some();
    known.then_some(code)
}

/// Every region numbers can be read in, with its country calling code,
/// sorted by code (for the settings form's list).
pub fn regions() -> Vec<(String, u16)> {
    let mut all: Vec<(String, u16)> = phonenumber::metadata::DATABASE
        .iter()
        .filter(|m| m.id().len() == 2 && m.id().chars().all(|c| c.is_ascii_uppercase()))
        .map(|m| (m.id().to_string(), m.country_code()))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// How a number is written nationally in `region`: its country calling
/// code and the trunk prefix dialled before a national number (`0` in
/// `GB`, `1` in `US`), if any.
pub fn national_rules(region: &str) -> Option<(u16, Option<String>)> {
    let meta = phonenumber::metadata::DATABASE.by_id(region)?;
    Some((
        meta.country_code(),
        meta.national_prefix().map(str::to_string),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_gives_its_country() {
        assert_eq!(region_of_zone("Europe/London"), Some("GB"));
        assert_eq!(region_of_zone("America/New_York"), Some("US"));
        assert_eq!(region_of_zone("Australia/Sydney"), Some("AU"));
        assert_eq!(region_of_zone("Asia/Calcutta"), Some("IN"));
        assert_eq!(region_of_zone("UTC"), None);
        assert_eq!(default_region_for("UTC"), "US");
        assert_eq!(default_region_for("Europe/Paris"), "FR");
    }

    #[test]
    fn regions_are_the_ones_numbers_can_be_read_in() {
        assert_eq!(parse_region(" gb "), Some("GB".into()));
        assert_eq!(parse_region("XX"), None);
        assert_eq!(parse_region("001"), None);
        assert!(regions().iter().any(|(r, c)| r == "FR" && *c == 33));
        assert_eq!(national_rules("GB"), Some((44, Some("0".into()))));
        assert_eq!(national_rules("US"), Some((1, Some("1".into()))));
    }
}
