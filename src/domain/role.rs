use std::fmt;
use std::str::FromStr;

/// What a signed-in person is, which decides the locations they reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Works inside the locations assigned to them.
    Location,
    /// Works across every location of their agency.
    Agency,
    /// Platform staff: sees every location, read-only except for reviewing
    /// opt-in evidence.
    Support,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Location, Role::Agency, Role::Support];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Location => "location",
            Role::Agency => "agency",
            Role::Support => "support",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Location => "Location user",
            Role::Agency => "Agency user",
            Role::Support => "Support",
        }
    }

    /// Support reads every location but edits none of them.
    pub fn is_read_only(self) -> bool {
        matches!(self, Role::Support)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role \"{s}\": use location, agency or support"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn only_support_is_read_only() {
        assert!(Role::Support.is_read_only());
        assert!(!Role::Location.is_read_only());
        assert!(!Role::Agency.is_read_only());
    }
}
