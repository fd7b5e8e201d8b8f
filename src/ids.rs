//! Typed identifiers. A user's, a client's and a session's ids are all
//! strings in the database and in tokens; as distinct types, one can't be
//! passed where another is meant (`list_live(user, current_session)` and
//! the like take one of each).

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }
    };
}

id_type!(
    /// A user's id (a UUIDv7): the `sub` of their tokens.
    UserId
);
id_type!(
    /// A registered client's `client_id`.
    ClientId
);
id_type!(
    /// A token session's id (a UUIDv7): the `sid` of its tokens.
    SessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_string_and_nothing_else() {
        let user = UserId::new("0190-user");
        assert_eq!(user.as_str(), "0190-user");
        assert_eq!(user.to_string(), "0190-user");
        assert!(user == *"0190-user");
        assert_ne!(user, UserId::new("0190-other"));
        assert_eq!(SessionId::new("s").into_string(), "s");
    }
}
