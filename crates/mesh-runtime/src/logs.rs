//! Reading an instance's log files line by line from a remembered offset, which is how the
//! agent follows them and resumes after a restart (it keeps the offsets; the files are
//! appended to by the container directly, see [`crate::shim`]).

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Complete lines after `offset`, and the offset after the last one. A partial last line is
/// left for the next call. A file shorter than `offset` (truncated or replaced) is read from
/// its start. Lines are decoded lossily: logs are not always UTF-8.
pub fn read_lines(path: &Path, offset: u64, max_bytes: usize) -> io::Result<(Vec<String>, u64)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(max_bytes as u64).read_to_end(&mut buf)?;
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok((Vec::new(), start));
    };
    let lines = buf[..end]
        .split(|b| *b == b'\n')
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    Ok((lines, start + end as u64 + 1))
}

#[cfg(test)]
mod tests;
