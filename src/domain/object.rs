//! A struct read from a JSON object only. serde's derive also reads a struct from an
//! array of its fields' values (`[1, "Day"]` for `{"count": 1, "interval": "Day"}`),
//! which no schema here allows; a nested struct a client sends is read through this.

use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<T> Object<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            // The fields are read from the same map, so an error still names its field.
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::license::KeyDuration;
    use serde_json::json;

    #[test]
    fn only_an_object_is_read() {
        let read = |v| serde_json::from_value::<Object<KeyDuration>>(v).map(Object::into_inner);
        assert_eq!(
            read(json!({"count": 2, "interval": "Day"})).unwrap().count,
            2
        );
        let error = read(json!([2, "Day"])).unwrap_err().to_string();
        assert!(error.contains("a JSON object"), "{error}");
        let error =
            serde_json::from_str::<Object<KeyDuration>>(r#"{"count": 2, "interval": "Fortnight"}"#)
                .unwrap_err()
                .to_string();
        assert!(error.contains("Fortnight"), "{error}");
    }
}
