//! Control characters (Unicode Cc: U+0000–U+001F, U+007F–U+009F) are
//! refused in every text a request carries, at the edge: PostgreSQL can't
//! store NUL in TEXT (a 500 deep in a query), and no field of Tessera's
//! means one. One check per input channel, so no handler can forget:
//! - the path and the query: [`refuse_in_target`], run on every request
//!   before routing (`startup`);
//! - form bodies: [`check_pairs`], called by the `/oauth2` form readers;
//! - JSON bodies: [`Checked`], which [`super::JsonObject`] reads through;
//! - HTTP Basic client credentials: `oauth::credentials`, with [`check`].

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

use super::error::{ApiError, OAuthApiError, page_failure};

/// Where a control character was found (never the text itself: it may be
/// a secret).
#[derive(Debug, thiserror::Error)]
#[error("{0} contains a control character (U+0000–U+001F or U+007F–U+009F)")]
pub struct ControlCharacter(pub &'static str);

/// Whether `s` has a Unicode Cc character.
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// `s` (which is `what`) without control characters.
pub fn check(what: &'static str, s: &str) -> Result<(), ControlCharacter> {
    if has_control(s) {
        Err(ControlCharacter(what))
    } else {
        Ok(())
    }
}

/// Form (or query) parameters, names and values.
pub fn check_pairs(
    what: &'static str,
    pairs: &[(impl AsRef<str>, impl AsRef<str>)],
) -> Result<(), ControlCharacter> {
    pairs.iter().try_for_each(|(name, value)| {
        check(what, name.as_ref())?;
        check(what, value.as_ref())
    })
}

/// `raw` with `%XY` escapes decoded, as the router decodes a path (bytes
/// that aren't UTF-8 become U+FFFD).
fn percent_decoded(raw: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy()
}

/// The percent-decoded path and every percent-decoded query parameter
/// (name and value, `+` as a space, as `web::Query` and the `/oauth2`
/// readers decode them).
pub fn check_target(path: &str, query: &str) -> Result<(), ControlCharacter> {
    check("the path", &percent_decoded(path))?;
    url::form_urlencoded::parse(query.as_bytes()).try_for_each(|(name, value)| {
        check("a query parameter", &name)?;
        check("a query parameter", &value)
    })
}

/// The 400 for a request whose path or query has a control character, in
/// the shape of the surface it was sent to; None when it has none.
pub fn refuse_in_target(req: &HttpRequest) -> Option<HttpResponse> {
    let e = check_target(req.path(), req.query_string()).err()?;
    Some(match percent_decoded(req.path()).as_ref() {
        // People see these: the error page, never a redirect.
        "/oauth2/authorize"
        | "/oauth2/logout"
        | "/account/reset"
        | "/account/verify"
        | "/account/invitation"
        | "/account/password" => page_failure(StatusCode::BAD_REQUEST, &e.to_string()),
        "/oauth2/token" | "/oauth2/revoke" | "/oauth2/introspect" => {
            OAuthApiError::from(e).error_response()
        }
        _ => ApiError::from(e).error_response(),
    })
}

/// The start of the message of a JSON body error for a string with a
/// control character; [`super::json_body_error`] recognises it.
pub const IN_JSON: &str = "a JSON string contains a control character";

fn refuse<E: de::Error>(s: &str) -> Result<(), E> {
    if has_control(s) {
        Err(E::custom(IN_JSON))
    } else {
        Ok(())
    }
}

/// A deserializer that refuses every string (object keys included) with a
/// control character, wherever it is in the document, and otherwise is
/// `D`: the target type's own checks (repeated and unknown fields) and the
/// error positions stay.
pub struct Checked<D>(pub D);

/// The visitor, seed or access of `D`, seeing strings through [`Checked`].
pub struct Wrapped<T>(pub T);

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method($($arg,)* Wrapped(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Checked<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf();
        deserialize_option(); deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq(); deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Wrapped<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Checked(d))
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrapped<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
        visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
        visit_u128(u128); visit_f32(f32); visit_f64(f64);
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<V::Value, E> {
        refuse(v.encode_utf8(&mut [0; 4]))?;
        self.0.visit_char(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        refuse(v)?;
        self.0.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        refuse(v)?;
        self.0.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        refuse(&v)?;
        self.0.visit_string(v)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
        refuse(&String::from_utf8_lossy(v))?;
        self.0.visit_bytes(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        refuse(&String::from_utf8_lossy(v))?;
        self.0.visit_borrowed_bytes(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<V::Value, E> {
        refuse(&String::from_utf8_lossy(&v))?;
        self.0.visit_byte_buf(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(Checked(d))
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(Checked(d))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Wrapped(seq))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Wrapped(map))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Wrapped(data))
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Wrapped<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Wrapped(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Wrapped<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Wrapped(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Wrapped(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Wrapped<A> {
    type Error = A::Error;
    type Variant = Wrapped<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Wrapped(seed))?;
        Ok((value, Wrapped(variant)))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Wrapped<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Wrapped(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrapped(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrapped(visitor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: Option<String>,
        tags: Option<Vec<String>>,
        flag: Option<bool>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        let mut d = serde_json::Deserializer::from_str(json);
        serde::Deserialize::deserialize(Checked(&mut d))
    }

    #[test]
    fn control_characters_are_cc_exactly() {
        for c in [
            '\0', '\u{1}', '\t', '\n', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}',
        ] {
            assert!(has_control(&format!("a{c}b")), "{c:?}");
        }
        for c in [
            ' ', '~', '\u{a0}', '\u{ad}', '\u{200b}', '\u{2028}', 'é', '😀',
        ] {
            assert!(!has_control(&format!("a{c}b")), "{c:?}");
        }
    }

    #[test]
    fn the_target_is_checked_decoded() {
        assert!(check_target("/v1/admin/users/%00", "").is_err());
        assert!(check_target("/v1/admin/users/%C2%85", "").is_err());
        assert!(
            check_target("/v1/admin/users/%2500", "").is_ok(),
            "decoded once"
        );
        assert!(check_target("/v1/me", "a=%00").is_err());
        assert!(check_target("/v1/me", "%01=a").is_err());
        assert!(check_target("/v1/me", "a=%7F").is_err());
        assert!(check_target("/v1/me", "a=%%%&b=%zz&c=+%20").is_ok());
    }

    #[test]
    fn json_strings_keys_and_elements_are_checked() {
        assert!(parse(r#"{"name": "ok", "tags": ["a"], "flag": true}"#).is_ok());
        for bad in [
            r#"{"name": "a\u0000b"}"#,
            r#"{"tags": ["ok", "\u001f"]}"#,
            "{\"name\": \"a\u{85}\"}",
            r#"{"na\u0000me": "x"}"#,
            r#"{"name": "\u007f"}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().starts_with(IN_JSON), "{bad}: {e}");
        }
        // The target's own checks stay.
        assert!(
            parse(r#"{"name": "a", "name": "b"}"#)
                .unwrap_err()
                .to_string()
                .contains("duplicate field")
        );
        assert!(
            parse(r#"{"other": 1}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
        // An escaped backslash before "u0000" is text, not a NUL.
        assert!(parse(r#"{"name": "\\u0000"}"#).is_ok());
    }
}
