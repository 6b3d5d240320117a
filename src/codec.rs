//! JSON for server functions' answers, decoded from text as Leptos decodes a resource's value
//! when it hydrates. server_fn's own `Json` decodes from bytes: serde_json then builds a second
//! deserializer for every type a page gets both ways, and the WASM carries both (about 5 KB
//! gzipped for the app's two resources). Use `#[server(output = codec::Json)]`.

use leptos::server_fn::{codec::Post, Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::{de::DeserializeOwned, Serialize};

/// JSON in the body of a `POST`, its answer decoded from text.
pub type Json = Post<TextJson>;

pub struct TextJson;

impl ContentType for TextJson {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for TextJson {
    const FORMAT_TYPE: Format = Format::Text;
}

impl<T: Serialize> Encodes<T> for TextJson {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        serde_json::to_vec(output).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for TextJson {
    type Error = serde_json::Error;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| serde::de::Error::custom("the answer is not UTF-8"))?;
        serde_json::from_str(text)
    }
}
