use thiserror::Error;

/// Store failures. The messages of the first four are meant for users as they are.
#[derive(Debug, Error)]
pub enum StoreError {
    /// `environment "shop" not found`
    #[error("{0} not found")]
    NotFound(String),
    /// `stack "app" already exists in environment "shop"`
    #[error("{0}")]
    AlreadyExists(String),
    /// The state forbids it: `rack "local" still hosts environments: shop`
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Invalid(String),
    #[error("sealed value cannot be opened: wrong master key or damaged data")]
    Crypto,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("master key: {0}")]
    Io(#[from] std::io::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;
