//! Server-sent events, parsed as bytes arrive (the WHATWG `text/event-stream` rules the
//! progress route follows): `event:` and `data:` fields, comments, any line ending, and chunks
//! that split a line or a character anywhere. A line or an event's data longer than the
//! parser's limit is an error, so a stream that never ends a line cannot grow memory forever.
//!
//! Written here rather than taken from `eventsource-stream` (0.2.3, its latest): that crate
//! caps neither a line nor an event's data, so a stream that never ends a line grows its buffer
//! without bound; it parses its whole unfinished buffer again at each chunk, so a long line sent
//! in small chunks costs quadratic time; and a byte that is not UTF-8 holds back everything
//! after it until the stream ends, where this parser replaces it and goes on.

use std::collections::VecDeque;

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// `message` when the server named none.
    pub name: String,
    pub data: String,
}

/// A line or an event's data grew past the limit.
#[derive(Debug, thiserror::Error)]
#[error("the event stream sent {what} longer than {limit} bytes")]
pub struct TooLong {
    what: &'static str,
    limit: usize,
}

pub struct SseParser {
    /// The most bytes a line, or an event's data, may hold.
    limit: usize,
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
    pub fn new(limit: usize) -> Self {
        SseParser {
            limit,
            line: Vec::new(),
            after_cr: false,
            name: String::new(),
            data: String::new(),
            has_data: false,
            ready: VecDeque::new(),
        }
    }

    /// Parses `bytes`. After an error the parser is in no state to go on: the stream is lost.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        for &byte in bytes {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\n' | b'\r' => {
                    let line = std::mem::take(&mut self.line);
                    self.line_ended(&String::from_utf8_lossy(&line))?;
                }
                _ if self.line.len() >= self.limit => return Err(self.too_long("a line")),
                _ => self.line.push(byte),
            }
        }
        Ok(())
    }

    fn too_long(&self, what: &'static str) -> TooLong {
        TooLong {
            what,
            limit: self.limit,
        }
    }

    /// The next complete event, if any.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    fn line_ended(&mut self, line: &str) -> Result<(), TooLong> {
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
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(()); // a comment: the server's heartbeat
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
                if self.data.len() + value.len() > self.limit {
                    return Err(self.too_long("an event's data"));
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // id, retry and unknown fields do not matter here
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new(1 << 10);
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk).expect("within the limit");
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

    #[test]
    fn a_line_that_never_ends_is_an_error_once_past_the_limit() {
        let mut parser = SseParser::new(16);
        assert!(parser.push(b"data: 0123456789").is_ok(), "16 bytes fit");
        let error = parser.push(b"a").expect_err("17 bytes do not");
        assert_eq!(
            error.to_string(),
            "the event stream sent a line longer than 16 bytes"
        );
        let mut parser = SseParser::new(16);
        let endless = [b'x'; 1000];
        assert!(parser.push(&endless).is_err());
        assert!(parser.line.len() <= 16);
    }

    #[test]
    fn data_lines_that_add_up_past_the_limit_are_an_error() {
        let mut parser = SseParser::new(16);
        assert!(
            parser.push(b"data: 01234567\ndata: 0123456\n").is_ok(),
            "8+1+7"
        );
        let error = parser.push(b"data: x\n").expect_err("8+1+7+1+1");
        assert_eq!(
            error.to_string(),
            "the event stream sent an event's data longer than 16 bytes"
        );
    }

    #[test]
    fn the_limit_is_per_line_and_per_event_not_per_stream() {
        let mut parser = SseParser::new(16);
        for _ in 0..3 {
            parser
                .push(b"data: 0123456789\n\n")
                .expect("within the limit");
            assert_eq!(parser.next_event(), Some(event("message", "0123456789")));
        }
    }
}
