//! Typed keys and values: a codec turns an item into the bytes stored and back, as LMDB's
//! (heed's) `BytesEncode`/`BytesDecode`. Built in: bytes, UTF-8 strings, little-endian
//! integers, `zerocopy` types (the typed-bytes traits pmap uses), and `serde` values as
//! postcard behind the `serde` feature.

use std::marker::PhantomData;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Why a codec refused bytes or an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// The codec's name.
    pub codec: &'static str,
    /// What was wrong.
    pub reason: String,
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.codec, self.reason)
    }
}

impl std::error::Error for CodecError {}

/// Encodes items of one type to bytes and decodes them back.
pub trait Codec {
    /// The item type.
    type Item;

    /// Appends the bytes of `item` to `out` (which the caller cleared).
    ///
    /// # Errors
    /// When the item cannot be encoded.
    fn encode(item: &Self::Item, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// The item these bytes encode.
    ///
    /// # Errors
    /// When the bytes are not an encoding of an item (for example a record another program
    /// wrote with another type).
    fn decode(bytes: &[u8]) -> Result<Self::Item, CodecError>;
}

/// Raw bytes, stored as they are.
#[derive(Debug, Clone, Copy)]
pub enum Bytes {}

impl Codec for Bytes {
    type Item = Vec<u8>;
    fn encode(item: &Vec<u8>, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(item);
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        Ok(bytes.to_vec())
    }
}

/// UTF-8 text.
#[derive(Debug, Clone, Copy)]
pub enum Str {}

impl Codec for Str {
    type Item = String;
    fn encode(item: &String, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(item.as_bytes());
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<String, CodecError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| CodecError {
            codec: "Str",
            reason: e.to_string(),
        })
    }
}

macro_rules! integer_codec {
    ($name:ident, $ty:ty) => {
        #[doc = concat!("`", stringify!($ty), "`, little-endian.")]
        #[derive(Debug, Clone, Copy)]
        pub enum $name {}

        impl Codec for $name {
            type Item = $ty;
            fn encode(item: &$ty, out: &mut Vec<u8>) -> Result<(), CodecError> {
                out.extend_from_slice(&item.to_le_bytes());
                Ok(())
            }
            fn decode(bytes: &[u8]) -> Result<$ty, CodecError> {
                let bytes: [u8; size_of::<$ty>()] = bytes.try_into().map_err(|_| CodecError {
                    codec: stringify!($name),
                    reason: format!("{} bytes, {} expected", bytes.len(), size_of::<$ty>()),
                })?;
                Ok(<$ty>::from_le_bytes(bytes))
            }
        }
    };
}

integer_codec!(U8, u8);
integer_codec!(U16, u16);
integer_codec!(U32, u32);
integer_codec!(U64, u64);
integer_codec!(I32, i32);
integer_codec!(I64, i64);

/// A `zerocopy` type stored as its bytes (in memory order: define it with `zerocopy`'s
/// little-endian integer types, `zerocopy::little_endian::U64` and friends, to make the file
/// portable between hosts).
pub struct ZeroCopy<T>(PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for ZeroCopy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ZeroCopy")
    }
}

impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> Codec for ZeroCopy<T> {
    type Item = T;
    fn encode(item: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(item.as_bytes());
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<T, CodecError> {
        T::read_from_bytes(bytes).map_err(|_| CodecError {
            codec: "ZeroCopy",
            reason: format!("{} bytes, {} expected", bytes.len(), size_of::<T>()),
        })
    }
}

/// A `serde` value in postcard's compact format.
#[cfg(feature = "serde")]
pub struct Postcard<T>(PhantomData<fn() -> T>);

#[cfg(feature = "serde")]
impl<T> std::fmt::Debug for Postcard<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Postcard")
    }
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec for Postcard<T> {
    type Item = T;
    fn encode(item: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let bytes = postcard::to_allocvec(item).map_err(|e| CodecError {
            codec: "Postcard",
            reason: e.to_string(),
        })?;
        out.extend_from_slice(&bytes);
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<T, CodecError> {
        postcard::from_bytes(bytes).map_err(|e| CodecError {
            codec: "Postcard",
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<C: Codec>(item: &C::Item) -> C::Item {
        let mut bytes = Vec::new();
        C::encode(item, &mut bytes).unwrap();
        C::decode(&bytes).unwrap()
    }

    #[test]
    fn built_ins_round_trip_and_refuse_wrong_lengths() {
        assert_eq!(round_trip::<U64>(&u64::MAX), u64::MAX);
        assert_eq!(round_trip::<I32>(&-5), -5);
        assert_eq!(round_trip::<Str>(&"héllo".to_string()), "héllo");
        assert_eq!(round_trip::<Bytes>(&vec![0, 1, 0]), vec![0, 1, 0]);
        assert_eq!(round_trip::<ZeroCopy<[u32; 2]>>(&[7, 9]), [7, 9]);
        assert!(U64::decode(&[1, 2, 3]).is_err());
        assert!(Str::decode(&[0xff]).is_err());
        assert!(ZeroCopy::<[u32; 2]>::decode(&[0; 7]).is_err());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_values_round_trip_through_postcard_and_garbage_is_an_error() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Lease {
            owner: String,
            expires: u64,
            tags: Vec<u8>,
        }
        let lease = Lease {
            owner: "client-7".into(),
            expires: 1_800_000_000,
            tags: vec![1, 2],
        };
        assert_eq!(round_trip::<Postcard<Lease>>(&lease), lease);
        assert!(Postcard::<Lease>::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
