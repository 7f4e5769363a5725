//! A tiny synchronous RESP2 client, for assertions made behind the back of the
//! code under test ("what does Redis really hold?").
//!
//! It is deliberately independent of fred: a test that checks our fred-based
//! code with fred itself could share its bugs.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$n`, or `$-1` (nil) as `None`.
    Bulk(Option<Vec<u8>>),
    /// `*n`, or `*-1` (nil) as `None`.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text: simple strings, bulk strings and integers.
    pub fn as_string(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The reply as an integer (integer replies, or bulk strings holding one).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            other => other.as_string()?.parse().ok(),
        }
    }

    /// The elements of an array reply, as text.
    pub fn as_strings(&self) -> Vec<String> {
        match self {
            Reply::Array(Some(items)) => items.iter().filter_map(Reply::as_string).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the reply is nil.
    pub fn is_nil(&self) -> bool {
        matches!(self, Reply::Bulk(None) | Reply::Array(None))
    }
}

/// One connection to a Redis server.
#[derive(Debug)]
pub struct RawClient {
    reader: BufReader<TcpStream>,
}

impl RawClient {
    /// Connects to `addr` (`host:port`), authenticating when `auth` is given
    /// as `(username, password)`.
    ///
    /// # Errors
    /// I/O errors, or `PermissionDenied` when AUTH is refused.
    pub fn connect(addr: &str, auth: Option<(Option<&str>, &str)>) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        // A paused server must not hang an assertion forever.
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_nodelay(true)?;
        let mut client = Self {
            reader: BufReader::new(stream),
        };
        if let Some((user, password)) = auth {
            let reply = match user {
                Some(user) => client.cmd(&["AUTH", user, password])?,
                None => client.cmd(&["AUTH", password])?,
            };
            if let Reply::Error(e) = reply {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, e));
            }
        }
        Ok(client)
    }

    /// Sends one command and reads its reply.
    ///
    /// # Errors
    /// I/O errors and protocol violations.
    pub fn cmd<S: AsRef<[u8]>>(&mut self, args: &[S]) -> io::Result<Reply> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            let arg = arg.as_ref();
            buf.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            buf.extend_from_slice(arg);
            buf.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&buf)?;
        self.read_reply()
    }

    /// Reads one reply (also used for pub/sub pushes).
    ///
    /// # Errors
    /// I/O errors and protocol violations.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1.min(line.len()));
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad RESP line {line:?}"),
            )
        };
        match kind {
            "+" => Ok(Reply::Simple(rest.to_owned())),
            "-" => Ok(Reply::Error(rest.to_owned())),
            ":" => rest.parse().map(Reply::Int).map_err(|_| bad()),
            "$" => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                let Ok(len) = usize::try_from(len) else {
                    return Ok(Reply::Bulk(None));
                };
                let mut data = vec![0; len + 2];
                self.reader.read_exact(&mut data)?;
                data.truncate(len);
                Ok(Reply::Bulk(Some(data)))
            }
            "*" => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                let Ok(len) = usize::try_from(len) else {
                    return Ok(Reply::Array(None));
                };
                let items = (0..len)
                    .map(|_| self.read_reply())
                    .collect::<io::Result<_>>()?;
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(bad()),
        }
    }
}
