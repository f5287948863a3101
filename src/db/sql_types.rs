//! The domain's enums as database text, both ways, through diesel's
//! `ToSql`/`FromSql`. A stored value this binary does not know (a reason,
//! channel, actor or transport written by a newer version) is a load
//! error, never skipped and never read as something else: a gate that
//! skipped an unknown reason would let a blocked message through.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use crate::domain::dnd::{Action, ActorKind, Kind, Origin, Reason};
use crate::domain::optin::Decision;
use crate::domain::{Channel, IntegrationStatus, TransportKind};

/// A stored value the binary cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the database holds {what} \"{value}\", which this version of dnd does not know \
     (written by a newer version?)"
)]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

macro_rules! text_enum {
    ($($ty:ty => $proxy:ident, $what:literal;)*) => {$(
        impl ToSql<Text, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl FromSql<Text, Pg> for $ty {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let value = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                value.parse().map_err(|_| {
                    Box::new(UnknownValue { what: $what, value })
                        as Box<dyn std::error::Error + Send + Sync>
                })
            }
        }

        /// Makes diesel derive `AsExpression` and `Queryable` for the
        /// domain type (which knows nothing of diesel).
        #[derive(AsExpression, FromSqlRow)]
        #[diesel(foreign_derive, sql_type = Text)]
        #[allow(dead_code)]
        struct $proxy($ty);
    )*};
}

text_enum! {
    Channel => ChannelProxy, "channel";
    Reason => ReasonProxy, "reason";
    Kind => KindProxy, "kind";
    ActorKind => ActorKindProxy, "actor kind";
    Action => ActionProxy, "history action";
    Origin => OriginProxy, "message origin";
    IntegrationStatus => IntegrationStatusProxy, "integration status";
    TransportKind => TransportKindProxy, "transport";
    Decision => DecisionProxy, "opt-in decision";
}

/// The value a load error names, when it is one of ours (diesel wraps it
/// with the field it was read for).
pub fn unknown_value(e: &diesel::result::Error) -> Option<&UnknownValue> {
    let diesel::result::Error::DeserializationError(inner) = e else {
        return None;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
    while let Some(err) = cause {
        if let Some(unknown) = err.downcast_ref::<UnknownValue>() {
            return Some(unknown);
        }
        cause = err.source();
    }
    None
}
