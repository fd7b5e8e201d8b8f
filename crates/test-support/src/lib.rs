//! Reading Tessera's answers as a client does, for its integration tests and
//! for `tessera-bench`: the hidden fields of the sign-in and consent pages,
//! and an answer's headers as one comparable string.

use http::HeaderMap;

/// The value of `<input type="hidden" name="{name}" value="…">` in a page,
/// unescaped; None when the page has no such field.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = start + html[start..].find('"')?;
    Some(
        html[start..end]
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The headers that differ from answer to answer whatever was asked.
pub const PER_ANSWER_HEADERS: [&str; 2] = ["date", "x-request-id"];

/// The headers of an answer, but for [`PER_ANSWER_HEADERS`]: sorted
/// `name: value` lines, so two answers' headers compare as strings.
pub fn header_signature(headers: &HeaderMap) -> String {
    let mut lines: Vec<String> = headers
        .iter()
        .filter(|(name, _)| !PER_ANSWER_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| format!("{name}: {}", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    lines.sort();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn hidden_field_reads_and_unescapes_the_value() {
        let html = "<form><input type=\"hidden\" name=\"request_id\" value=\"0190-ab\">\
            <input type=\"hidden\" name=\"csrf_token\" value=\"a&amp;b&quot;c&#x27;&lt;&gt;\">";
        assert_eq!(hidden_field(html, "request_id").as_deref(), Some("0190-ab"));
        assert_eq!(
            hidden_field(html, "csrf_token").as_deref(),
            Some("a&b\"c'<>")
        );
        assert_eq!(hidden_field(html, "email"), None);
        assert_eq!(hidden_field("name=\"x\" value=\"unterminated", "x"), None);
    }

    #[test]
    fn header_signature_is_sorted_and_leaves_out_per_answer_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("abc"));
        headers.insert("www-authenticate", HeaderValue::from_static("Bearer"));
        headers.insert("date", HeaderValue::from_static("Wed, 02 Dec 2026"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        assert_eq!(
            header_signature(&headers),
            "content-type: application/json\nwww-authenticate: Bearer"
        );
    }
}
