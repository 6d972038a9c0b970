//! Server-sent events, parsed as bytes arrive (the WHATWG `text/event-stream` rules the
//! progress route follows): `event:` and `data:` fields, comments, any line ending, and chunks
//! that split a line or a character anywhere.

use std::collections::VecDeque;

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// `message` when the server named none.
    pub name: String,
    pub data: String,
}

#[derive(Default)]
pub struct SseParser {
    /// Bytes of a line not yet ended.
    line: Vec<u8>,
    /// The last byte seen was `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    name: String,
    data: String,
    has_data: bool,
    ready: VecDeque<SseEvent>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    self.line_ended(&String::from_utf8_lossy(&line));
                }
                _ => self.line.push(byte),
            }
        }
    }

    /// The next complete event, if any.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    fn line_ended(&mut self, line: &str) {
        if line.is_empty() {
            let name = std::mem::take(&mut self.name);
            let data = std::mem::take(&mut self.data);
            if std::mem::take(&mut self.has_data) {
                self.ready.push_back(SseEvent {
                    name: if name.is_empty() {
                        "message".to_string()
                    } else {
                        name
                    },
                    data,
                });
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment: the server's heartbeat
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry and unknown fields do not matter here
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk);
            while let Some(event) = parser.next_event() {
                out.push(event);
            }
        }
        out
    }

    fn event(name: &str, data: &str) -> SseEvent {
        SseEvent {
            name: name.to_string(),
            data: data.to_string(),
        }
    }

    #[test]
    fn named_events_are_dispatched_at_the_blank_line() {
        assert_eq!(
            events(&[b"event: progress\ndata: {\"a\":1}\n\nevent: deleted\ndata: {}\n\n"]),
            [event("progress", "{\"a\":1}"), event("deleted", "{}")]
        );
    }

    #[test]
    fn heartbeat_comments_dispatch_nothing() {
        assert_eq!(events(&[b": heartbeat\n\n: heartbeat\n\n"]), []);
    }

    #[test]
    fn an_event_split_across_chunks_anywhere_is_whole() {
        let text = "event: progress\r\ndata: {\"name\":\"flotte-é\"}\r\n\r\n".as_bytes();
        for split in 1..text.len() {
            assert_eq!(
                events(&[&text[..split], &text[split..]]),
                [event("progress", "{\"name\":\"flotte-é\"}")],
                "split at {split}"
            );
        }
    }

    #[test]
    fn data_lines_join_with_newlines_and_cr_alone_ends_a_line() {
        assert_eq!(
            events(&[b"data:one\rdata: two\r\r"]),
            [event("message", "one\ntwo")]
        );
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        assert_eq!(events(&[b"event: progress\ndata: {}\n"]), []);
    }
}
