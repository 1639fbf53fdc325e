//! The journal's file format: a segment is a sequence of framed records.
//!
//! A frame is `[body length: u32 LE][CRC-32 of body: u32 LE][body]`, and a body is
//! `[received_at: i64 LE][device id length: u16 LE][device id][MQTT payload]`. A crash can
//! leave a torn last frame, and a failed write or a disk fault a damaged one in the middle.
//! Reading skips bytes that do not start a frame whose length and checksum hold, and goes on
//! with the next frame that does.

use std::sync::Arc;

/// Bytes of a frame's header.
const HEADER_BYTES: usize = 8;
/// Bytes of a body before the device id.
const BODY_PREFIX_BYTES: usize = 10;

/// One journaled MQTT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    pub device: Arc<str>,
    /// Engine time of receipt, in milliseconds since the Unix epoch.
    pub received_at: i64,
    pub payload: Vec<u8>,
}

/// Appends the frame of one message to `out`.
pub fn encode(device: &str, received_at: i64, payload: &[u8], out: &mut Vec<u8>) {
    let device_len = u16::try_from(device.len()).unwrap_or(u16::MAX);
    let device = &device.as_bytes()[..usize::from(device_len)];
    let body_len = BODY_PREFIX_BYTES + device.len() + payload.len();
    let start = out.len();
    out.reserve(HEADER_BYTES + body_len);
    out.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&received_at.to_le_bytes());
    out.extend_from_slice(&device_len.to_le_bytes());
    out.extend_from_slice(device);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + HEADER_BYTES..]);
    out[start + 4..start + HEADER_BYTES].copy_from_slice(&crc.to_le_bytes());
}

/// The records of a segment's bytes, and the bytes skipped because no record starts there.
#[derive(Debug, Default)]
pub struct Decoded {
    pub entries: Vec<JournalEntry>,
    /// Bytes after the last whole record, which a crash left half written.
    pub torn_bytes: usize,
    /// Bytes skipped between whole records: damage, not a torn end.
    pub corrupt_bytes: usize,
}

/// Reads every whole record of `bytes`, skipping damaged stretches byte by byte until the
/// next record whose length and checksum hold.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut decoded = Decoded::default();
    let mut offset = 0;
    let mut skipped = 0;
    while offset < bytes.len() {
        match decode_one(&bytes[offset..]) {
            Some((entry, used)) => {
                decoded.entries.push(entry);
                decoded.corrupt_bytes += skipped;
                skipped = 0;
                offset += used;
            }
            None => {
                skipped += 1;
                offset += 1;
            }
        }
    }
    decoded.torn_bytes = skipped;
    decoded
}

fn decode_one(bytes: &[u8]) -> Option<(JournalEntry, usize)> {
    let header = bytes.get(..HEADER_BYTES)?;
    let body_len = usize::try_from(u32::from_le_bytes(header[..4].try_into().ok()?)).ok()?;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let body = bytes.get(HEADER_BYTES..HEADER_BYTES + body_len)?;
    if body_len < BODY_PREFIX_BYTES || crc32fast::hash(body) != crc {
        return None;
    }
    let received_at = i64::from_le_bytes(body[..8].try_into().ok()?);
    let device_len = usize::from(u16::from_le_bytes(body[8..10].try_into().ok()?));
    let device = body.get(BODY_PREFIX_BYTES..BODY_PREFIX_BYTES + device_len)?;
    let device = std::str::from_utf8(device).ok()?;
    let payload = body[BODY_PREFIX_BYTES + device_len..].to_vec();
    Some((
        JournalEntry {
            device: Arc::from(device),
            received_at,
            payload,
        },
        HEADER_BYTES + body_len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(records: &[(&str, i64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (device, at, payload) in records {
            encode(device, *at, payload, &mut out);
        }
        out
    }

    #[test]
    fn decode_reads_records_in_order() {
        let bytes = encoded(&[
            (
                "feedbin-001",
                1_700_000_000_000,
                br#"{"ts":1,"weight_kg":5}"#,
            ),
            ("machine-01", 1_700_000_000_500, b""),
        ]);
        let decoded = decode(&bytes);
        assert_eq!(decoded.torn_bytes, 0);
        assert_eq!(decoded.entries.len(), 2);
        assert_eq!(&*decoded.entries[0].device, "feedbin-001");
        assert_eq!(decoded.entries[0].payload, br#"{"ts":1,"weight_kg":5}"#);
        assert_eq!(decoded.entries[1].received_at, 1_700_000_000_500);
        assert!(decoded.entries[1].payload.is_empty());
    }

    #[test]
    fn decode_skips_torn_tail() {
        let mut bytes = encoded(&[("a", 1, b"one"), ("b", 2, b"two")]);
        let whole = bytes.len();
        bytes.truncate(whole - 3);
        let decoded = decode(&bytes);
        assert_eq!(decoded.entries.len(), 1);
        assert_eq!(
            decoded.torn_bytes,
            whole - 3 - (HEADER_BYTES + BODY_PREFIX_BYTES + 1 + 3)
        );
    }

    #[test]
    fn decode_skips_corrupt_last_record() {
        let mut bytes = encoded(&[("a", 1, b"one"), ("b", 2, b"two")]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let decoded = decode(&bytes);
        assert_eq!(decoded.entries.len(), 1);
        assert!(decoded.torn_bytes > 0);
    }

    #[test]
    fn decode_resumes_after_corrupt_middle() {
        let mut bytes = encoded(&[("a", 1, b"one")]);
        let damaged_at = bytes.len() + HEADER_BYTES + 3;
        bytes.extend(encoded(&[("b", 2, b"two")]));
        bytes.extend(b"garbage written by a failed append");
        bytes.extend(encoded(&[("c", 3, b"three"), ("d", 4, b"four")]));
        bytes[damaged_at] ^= 0xff;
        let decoded = decode(&bytes);
        let devices: Vec<&str> = decoded.entries.iter().map(|entry| &*entry.device).collect();
        assert_eq!(devices, ["a", "c", "d"]);
        assert!(decoded.corrupt_bytes > 0);
        assert_eq!(decoded.torn_bytes, 0);
    }
}
