//! A strict RESP2/RESP3 client over a plain socket, for tests that must see
//! the exact replies on the wire: one well-formed reply per command, nothing
//! more, nothing less.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Resp {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Vec<u8>),
    /// RESP2 nil bulk/array or RESP3 `_`.
    Nil,
    Array(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
    Set(Vec<Resp>),
    Push(Vec<Resp>),
    Double(Vec<u8>),
    Bool(bool),
    BigNumber(Vec<u8>),
    Verbatim(Vec<u8>),
}

impl Resp {
    pub fn is_error(&self) -> bool {
        matches!(self, Resp::Error(_))
    }

    /// The error text, if this is an error.
    pub fn error_text(&self) -> Option<String> {
        match self {
            Resp::Error(e) => Some(String::from_utf8_lossy(e).into_owned()),
            _ => None,
        }
    }

    /// Every scalar of this reply as text, depth first (map keys included).
    pub fn flat(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_flat(&mut out);
        out
    }

    fn collect_flat(&self, out: &mut Vec<String>) {
        match self {
            Resp::Simple(b)
            | Resp::Error(b)
            | Resp::Bulk(b)
            | Resp::Double(b)
            | Resp::BigNumber(b)
            | Resp::Verbatim(b) => out.push(String::from_utf8_lossy(b).into_owned()),
            Resp::Int(i) => out.push(i.to_string()),
            Resp::Bool(b) => out.push(b.to_string()),
            Resp::Nil => out.push("(nil)".into()),
            Resp::Array(v) | Resp::Set(v) | Resp::Push(v) => {
                v.iter().for_each(|x| x.collect_flat(out))
            }
            Resp::Map(v) => v.iter().for_each(|(k, x)| {
                k.collect_flat(out);
                x.collect_flat(out)
            }),
        }
    }

    /// Every error in this reply, nested ones included.
    pub fn errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_errors(&mut out);
        out
    }

    fn collect_errors(&self, out: &mut Vec<String>) {
        match self {
            Resp::Error(e) => out.push(String::from_utf8_lossy(e).into_owned()),
            Resp::Array(v) | Resp::Set(v) | Resp::Push(v) => {
                v.iter().for_each(|x| x.collect_errors(out))
            }
            Resp::Map(v) => v.iter().for_each(|(k, x)| {
                k.collect_errors(out);
                x.collect_errors(out)
            }),
            _ => {}
        }
    }
}

pub struct RawConn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Largest aggregate or bulk length accepted, a guard against garbage.
    pub max_len: usize,
}

/// The RESP encoding of one command.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl RawConn {
    pub fn connect(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to test server");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let reader = BufReader::with_capacity(1 << 16, stream.try_clone().expect("clone socket"));
        RawConn {
            writer: stream,
            reader,
            max_len: 64 << 20,
        }
    }

    pub fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        self.writer.write_all(&encode(args))
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)
    }

    /// One command and its reply.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Resp> {
        self.send(args)?;
        self.read()
    }

    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        if !line.ends_with(b"\r\n") {
            return Err(bad(format!(
                "line without CRLF: {:?}",
                String::from_utf8_lossy(&line)
            )));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn number(&self, text: &[u8]) -> io::Result<i64> {
        std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad number {:?}", String::from_utf8_lossy(text))))
    }

    fn length(&self, text: &[u8]) -> io::Result<Option<usize>> {
        let n = self.number(text)?;
        if n == -1 {
            return Ok(None);
        }
        let n = usize::try_from(n).map_err(|_| bad(format!("bad length {n}")))?;
        if n > self.max_len {
            return Err(bad(format!("length {n} over the guard")));
        }
        Ok(Some(n))
    }

    fn blob(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len + 2];
        self.reader.read_exact(&mut buf)?;
        if !buf.ends_with(b"\r\n") {
            return Err(bad("blob without CRLF"));
        }
        buf.truncate(len);
        Ok(buf)
    }

    fn items(&mut self, n: usize) -> io::Result<Vec<Resp>> {
        (0..n).map(|_| self.read()).collect()
    }

    /// Reads exactly one reply, strictly.
    pub fn read(&mut self) -> io::Result<Resp> {
        let line = self.line()?;
        let (&kind, rest) = line.split_first().ok_or_else(|| bad("empty line"))?;
        let rest = rest.to_vec();
        Ok(match kind {
            b'+' => Resp::Simple(rest),
            b'-' => Resp::Error(rest),
            b':' => Resp::Int(self.number(&rest)?),
            b'$' => match self.length(&rest)? {
                None => Resp::Nil,
                Some(n) => Resp::Bulk(self.blob(n)?),
            },
            b'*' => match self.length(&rest)? {
                None => Resp::Nil,
                Some(n) => Resp::Array(self.items(n)?),
            },
            b'_' if rest.is_empty() => Resp::Nil,
            b',' => Resp::Double(rest),
            b'#' if rest == b"t" => Resp::Bool(true),
            b'#' if rest == b"f" => Resp::Bool(false),
            b'(' => Resp::BigNumber(rest),
            b'!' => match self.length(&rest)? {
                Some(n) => Resp::Error(self.blob(n)?),
                None => return Err(bad("nil blob error")),
            },
            b'=' => match self.length(&rest)? {
                Some(n) => Resp::Verbatim(self.blob(n)?),
                None => return Err(bad("nil verbatim string")),
            },
            b'%' => {
                let n = self.length(&rest)?.ok_or_else(|| bad("nil map"))?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.read()?;
                    let v = self.read()?;
                    pairs.push((k, v));
                }
                Resp::Map(pairs)
            }
            b'~' => Resp::Set(self.items(self.length(&rest)?.ok_or_else(|| bad("nil set"))?)?),
            b'>' => Resp::Push(self.items(self.length(&rest)?.ok_or_else(|| bad("nil push"))?)?),
            _ => {
                return Err(bad(format!(
                    "unknown reply type {:?}",
                    String::from_utf8_lossy(&line)
                )))
            }
        })
    }

    /// True when nothing more is waiting on the connection (no stray reply).
    pub fn nothing_pending(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let _ = self
            .writer
            .set_read_timeout(Some(Duration::from_millis(100)));
        let mut probe = [0u8; 1];
        let quiet = match self.reader.get_ref().peek(&mut probe) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        };
        let _ = self.writer.set_read_timeout(Some(Duration::from_secs(30)));
        quiet
    }
}
