//! Error bodies exactly as the real services shape them: the POP gateway's JSON/XML for VOD and
//! STS (`docs/reference/vod-api.md` §5.1), OSS's XML with `x-oss-request-id` / `x-oss-ec` (`docs/reference/oss.md` §4.1).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

/// The body format an RPC caller asked for with `Format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Xml,
}

impl Format {
    /// `Format=XML` (any case) gives XML; everything else JSON. The doc's default is XML, but
    /// every SDK sends `Format=JSON`/`json`, and our callers expect JSON when they omit it.
    pub(crate) fn from_param(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.eq_ignore_ascii_case("xml") => Format::Xml,
            _ => Format::Json,
        }
    }
}

/// A VOD / STS error: HTTP status, `Code`, `Message`.
#[derive(Debug, Clone)]
pub(crate) struct RpcError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl RpcError {
    pub(crate) fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.into(),
            message: message.into(),
        }
    }

    /// A required parameter is absent: the gateway answers `Missing{Name}`.
    pub(crate) fn missing(name: &str) -> Self {
        Self::new(
            400,
            format!("Missing{name}"),
            format!("{name} is mandatory for this action."),
        )
    }

    /// A parameter has a value the API does not accept.
    pub(crate) fn invalid_param(name: &str) -> Self {
        Self::new(
            400,
            "InvalidParameter",
            format!("The specified parameter \"{name}\" is not valid."),
        )
    }

    pub(crate) fn length_exceeded(name: &str, max: usize) -> Self {
        Self::new(
            400,
            "LengthExceededMax",
            format!("The specified {name} length has exceeded {max} bytes."),
        )
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            500,
            "InternalError",
            "The request processing has failed due to some unknown error.",
        )
    }
}

/// Uppercase UUID, the form of every POP `RequestId`.
pub(crate) fn rpc_request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_ascii_uppercase()
}

/// 24 upper-case hex characters, the form of OSS's `x-oss-request-id`.
pub(crate) fn oss_request_id() -> String {
    let bytes: [u8; 12] = rand::random();
    hex::encode_upper(bytes)
}

pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders a JSON value as the gateway's XML: objects become child elements, arrays repeat the
/// element of their key, scalars are text.
fn json_to_xml(name: &str, value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            for item in items {
                json_to_xml(name, item, out);
            }
        }
        Value::Object(map) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in map {
                json_to_xml(k, v, out);
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Null => out.push_str(&format!("<{name}/>")),
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", xml_escape(s))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

fn rpc_body(root: &str, format: Format, value: &serde_json::Value) -> (String, &'static str) {
    match format {
        Format::Json => (value.to_string(), "application/json;charset=utf-8"),
        Format::Xml => {
            let mut out = String::from("<?xml version='1.0' encoding='UTF-8'?>");
            json_to_xml(root, value, &mut out);
            (out, "text/xml;charset=utf-8")
        }
    }
}

/// A successful RPC answer; `value` must already hold `RequestId`.
pub(crate) fn rpc_success(action: &str, format: Format, value: serde_json::Value) -> Response {
    let request_id = value
        .get("RequestId")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    let (body, content_type) = rpc_body(&format!("{action}Response"), format, &value);
    let mut resp = (StatusCode::OK, body).into_response();
    set_rpc_headers(&mut resp, content_type, &request_id);
    resp
}

/// An RPC error: `{"RequestId","HostId","Code","Message","Recommend"}` (or `<Error>` in XML).
pub(crate) fn rpc_error(
    err: &RpcError,
    format: Format,
    host_id: &str,
    request_id: &str,
) -> Response {
    // The real gateway's form (`docs/reference/vod-api.md` §5.1).
    let recommend = format!(
        "https://error-center.aliyun.com/status/search?Keyword={}&source=PopGw",
        err.code
    );
    // serde_json's default map sorts keys; the gateway's order is not meaningful, so build
    // the text by hand to keep RequestId first as in the documented sample.
    let value = serde_json::json!({
        "RequestId": request_id,
        "HostId": host_id,
        "Code": err.code,
        "Message": err.message,
        "Recommend": recommend,
    });
    let (body, content_type) = match format {
        Format::Json => (
            format!(
                "{{\"RequestId\":{},\"HostId\":{},\"Code\":{},\"Message\":{},\"Recommend\":{}}}",
                value["RequestId"],
                value["HostId"],
                value["Code"],
                value["Message"],
                value["Recommend"]
            ),
            "application/json;charset=utf-8",
        ),
        Format::Xml => {
            let mut out = String::from("<?xml version='1.0' encoding='UTF-8'?><Error>");
            for k in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
                json_to_xml(k, &value[k], &mut out);
            }
            out.push_str("</Error>");
            (out, "text/xml;charset=utf-8")
        }
    };
    let mut resp = (err.status, body).into_response();
    set_rpc_headers(&mut resp, content_type, request_id);
    resp
}

fn set_rpc_headers(resp: &mut Response, content_type: &'static str, request_id: &str) {
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-acs-request-id", v);
    }
}

/// An OSS error.
#[derive(Debug, Clone)]
pub(crate) struct OssError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// OSS's detailed error code (`x-oss-ec`, `<EC>`).
    pub ec: Option<String>,
    /// Error-specific elements, in order, after `HostId`.
    pub extra: Vec<(String, String)>,
}

impl OssError {
    pub(crate) fn new(status: u16, code: &str, message: &str, ec: Option<&str>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_owned(),
            message: message.to_owned(),
            ec: ec.map(str::to_owned),
            extra: Vec::new(),
        }
    }

    pub(crate) fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.extra.push((name.to_owned(), value.into()));
        self
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            500,
            "InternalError",
            "Please contact the server administrator, oss@service.aliyun.com.",
            None,
        )
    }

    pub(crate) fn xml(&self, request_id: &str, host_id: &str) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n");
        let mut push = |name: &str, value: &str| {
            out.push_str(&format!("  <{name}>{}</{name}>\n", xml_escape(value)));
        };
        push("Code", &self.code);
        push("Message", &self.message);
        push("RequestId", request_id);
        push("HostId", host_id);
        for (name, value) in &self.extra {
            push(name, value);
        }
        if let Some(ec) = &self.ec {
            push("EC", ec);
            push(
                "RecommendDoc",
                &format!("https://api.aliyun.com/troubleshoot?q={ec}"),
            );
        }
        out.push_str("</Error>\n");
        out
    }

    /// The response; for HEAD there is no body, the XML travels base64-encoded in `x-oss-err`.
    pub(crate) fn response(&self, request_id: &str, host_id: &str, head: bool) -> Response {
        let xml = self.xml(request_id, host_id);
        let mut resp = if head {
            let mut r = self.status.into_response();
            if let Ok(v) = HeaderValue::from_str(
                &base64::engine::general_purpose::STANDARD.encode(xml.as_bytes()),
            ) {
                r.headers_mut().insert("x-oss-err", v);
            }
            r
        } else {
            (self.status, xml).into_response()
        };
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        if let Some(ec) = self
            .ec
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            headers.insert("x-oss-ec", ec);
        }
        oss_common_headers(&mut resp, request_id);
        resp
    }
}

/// Headers OSS puts on every answer.
pub(crate) fn oss_common_headers(resp: &mut Response, request_id: &str) {
    let headers = resp.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static("AliyunOSS"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-oss-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now())) {
        headers.insert(header::DATE, v);
    }
}
