//! Reading typed values out of rows, and turning database errors into store errors.
//!
//! Everything read back is validated again (names, domains, enums, ranges): a row that does not
//! parse is reported as a decode error rather than trusted or unwrapped.

use mesh_types::{Domain, Name};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::error::ErrorKind;

use crate::{StoreError, StoreResult};

pub(crate) fn corrupt(what: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into()))
}

pub(crate) fn int(row: &AnyRow, col: &str) -> StoreResult<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub(crate) fn opt_int(row: &AnyRow, col: &str) -> StoreResult<Option<i64>> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

pub(crate) fn text(row: &AnyRow, col: &str) -> StoreResult<String> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(crate) fn opt_text(row: &AnyRow, col: &str) -> StoreResult<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(crate) fn blob(row: &AnyRow, col: &str) -> StoreResult<Vec<u8>> {
    Ok(row.try_get::<Vec<u8>, _>(col)?)
}

pub(crate) fn float(row: &AnyRow, col: &str) -> StoreResult<f64> {
    Ok(row.try_get::<f64, _>(col)?)
}

/// An integer column that must fit `T` (counts, ports, versions).
pub(crate) fn int_as<T: TryFrom<i64>>(row: &AnyRow, col: &str) -> StoreResult<T> {
    let v = int(row, col)?;
    T::try_from(v).map_err(|_| corrupt(format!("column {col} holds {v}, which is out of range")))
}

pub(crate) fn opt_int_as<T: TryFrom<i64>>(row: &AnyRow, col: &str) -> StoreResult<Option<T>> {
    match opt_int(row, col)? {
        None => Ok(None),
        Some(v) => T::try_from(v)
            .map(Some)
            .map_err(|_| corrupt(format!("column {col} holds {v}, which is out of range"))),
    }
}

pub(crate) fn name(row: &AnyRow, col: &str) -> StoreResult<Name> {
    parse_name(&text(row, col)?, col)
}

pub(crate) fn opt_name(row: &AnyRow, col: &str) -> StoreResult<Option<Name>> {
    opt_text(row, col)?.map(|s| parse_name(&s, col)).transpose()
}

fn parse_name(s: &str, col: &str) -> StoreResult<Name> {
    Name::parse(s).map_err(|e| corrupt(format!("column {col}: {e}")))
}

pub(crate) fn domain(row: &AnyRow, col: &str) -> StoreResult<Domain> {
    let s = text(row, col)?;
    Domain::parse(&s).map_err(|e| corrupt(format!("column {col}: {e}")))
}

/// An enum stored under its wire name (`"running"`, `"admin"`, ...).
pub(crate) fn enum_of<T: DeserializeOwned>(row: &AnyRow, col: &str) -> StoreResult<T> {
    let s = text(row, col)?;
    serde_json::from_value(serde_json::Value::String(s.clone()))
        .map_err(|_| corrupt(format!("column {col} holds unknown value {s:?}")))
}

/// The wire name of an enum, which is how enums are stored.
pub(crate) fn wire<T: Serialize>(value: &T) -> StoreResult<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Invalid(
            "value has no name to store it under".into(),
        )),
    }
}

/// A count or size given as u32/u64, as the i64 the databases store.
pub(crate) fn to_i64<T: TryInto<i64> + Copy + std::fmt::Display>(
    what: &str,
    v: T,
) -> StoreResult<i64> {
    v.try_into()
        .map_err(|_| StoreError::Invalid(format!("{what} {v} is too large")))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == ErrorKind::UniqueViolation)
}

pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.kind() == ErrorKind::ForeignKeyViolation)
}

/// Maps a unique-index violation to `AlreadyExists` with a message naming the duplicate.
///
/// Callers check for duplicates first where they can give a better message; this catches the
/// race where another control plane inserted the same name in between.
pub(crate) trait OrExists<T> {
    fn or_exists(self, message: impl FnOnce() -> String) -> StoreResult<T>;
}

impl<T> OrExists<T> for Result<T, sqlx::Error> {
    fn or_exists(self, message: impl FnOnce() -> String) -> StoreResult<T> {
        self.map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::AlreadyExists(message())
            } else {
                StoreError::Database(e)
            }
        })
    }
}
