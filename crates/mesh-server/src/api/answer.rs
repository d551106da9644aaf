//! How the errors of the layers below `api/` answer over HTTP: one `From` impl per error type,
//! so a handler's `?` gives the same status and message wherever the error comes from.

use mesh_types::ErrorCode;

use crate::deploy::DeployError;
use crate::domain::migration::MigrationError;
use crate::domain::placement::PlaceError;
use crate::domain::racks::RackError;
use crate::domain::replacement::ReplaceError;
use crate::domain::servers::ServerError;
use crate::error::ApiError;
use crate::tasks::TaskError;

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Busy { .. } => ApiError::precondition(e.to_string()),
            DeployError::Store(e) => e.into(),
        }
    }
}

impl From<PlaceError> for ApiError {
    fn from(e: PlaceError) -> Self {
        match e {
            PlaceError::NoRack => ApiError::precondition(e.to_string()),
            PlaceError::NotOnRack { .. } => ApiError::invalid(e.to_string()),
            PlaceError::NoReadyServer { .. } | PlaceError::ServerLost { .. } => {
                ApiError::new(ErrorCode::Unavailable, e.to_string())
            }
            PlaceError::Store(e) => e.into(),
        }
    }
}

impl From<MigrationError> for ApiError {
    fn from(e: MigrationError) -> Self {
        match e {
            MigrationError::NoRack | MigrationError::GraceTooLong { .. } => {
                ApiError::invalid(e.to_string())
            }
            MigrationError::NoLiveRack { .. } | MigrationError::NotHealthyYet { .. } => {
                ApiError::precondition(e.to_string())
            }
        }
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> Self {
        match e {
            ServerError::RackHasServer { .. } | ServerError::NameTaken { .. } => {
                ApiError::precondition(e.to_string())
            }
            ServerError::BadRouter(_) => ApiError::invalid(e.to_string()),
            ServerError::Store(e) => e.into(),
        }
    }
}

impl From<TaskError> for ApiError {
    /// The rack's agents are not there now: worth trying again.
    fn from(e: TaskError) -> Self {
        ApiError::new(ErrorCode::Unavailable, e.to_string())
    }
}

impl From<ReplaceError> for ApiError {
    /// Every option or version error is the request's to fix.
    fn from(e: ReplaceError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<RackError> for ApiError {
    /// Every rack error is the request's to fix.
    fn from(e: RackError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use mesh_store::StoreError;

    use super::*;

    fn answer(e: impl Into<ApiError>) -> (u16, String) {
        let e = e.into();
        (e.code.http_status(), e.message)
    }

    #[test]
    fn deployment_errors_answer_as_before() {
        let busy = DeployError::Busy {
            env: "shop".into(),
            stack: "app".into(),
        };
        assert_eq!(
            answer(busy),
            (
                409,
                "a deployment of shop/app is already running; follow it with `mesh deployments show` or wait for it to end"
                    .to_string()
            )
        );
        let e: ApiError = DeployError::Store(StoreError::NotFound("stack \"app\"".into())).into();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::NotFound, "stack \"app\" not found")
        );
        let e: ApiError = DeployError::Store(StoreError::Crypto).into();
        assert_eq!(e.code, ErrorCode::Internal);
        assert_eq!(
            e.message,
            "internal error in the control plane's store; see its log"
        );
    }

    #[test]
    fn placement_errors_answer_as_before() {
        assert_eq!(
            answer(PlaceError::NoRack),
            (409, "the environment is on no rack".to_string())
        );
        let e: ApiError = PlaceError::NoReadyServer {
            rack: "local".parse().unwrap(),
        }
        .into();
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(
            e.message,
            "no server of rack local has an agent registered; is `mesh up` or `mesh agent` running?"
        );
        let e: ApiError = PlaceError::Store(StoreError::NotFound("rack \"x\"".into())).into();
        assert_eq!(e, ApiError::from(StoreError::NotFound("rack \"x\"".into())));
        let lost = PlaceError::ServerLost {
            rack: "local".parse().unwrap(),
            server: "box-1".parse().unwrap(),
            seen: "40s".into(),
            lost_after: "30s".into(),
        };
        assert_eq!(answer(lost).0, 503);
        let not_on = PlaceError::NotOnRack {
            rack: "west".parse().unwrap(),
            racks: "local,east".into(),
        };
        assert_eq!(answer(not_on).0, 400);
    }

    #[test]
    fn a_second_server_of_a_rack_is_a_failed_precondition() {
        let e: ApiError = ServerError::RackHasServer {
            rack: "local".parse().unwrap(),
            server: "box-1".parse().unwrap(),
            state: "ready",
            seen: "1s".into(),
            lost_after: "30s".into(),
        }
        .into();
        assert_eq!(e.code, ErrorCode::FailedPrecondition);
        assert!(e.message.starts_with("rack local already has server box-1"));
        let e: ApiError = ServerError::Store(StoreError::Crypto).into();
        assert_eq!(e.code, ErrorCode::Internal);
    }

    #[test]
    fn a_task_no_agent_takes_is_unavailable() {
        assert_eq!(
            answer(TaskError::NoAgent {
                rack: "local".into()
            }),
            (
                503,
                "no agent of rack local is connected to this control plane".to_string()
            )
        );
    }

    #[test]
    fn rack_errors_are_invalid_requests() {
        let e: ApiError = RackError::SizeRequired.into();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert_eq!(e.message, "--size is required for racks of this provider");
        let e: ApiError = RackError::BadAddress("x y".into()).into();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                ErrorCode::InvalidArgument,
                "rack address \"x y\" is neither an IP address nor a hostname"
            )
        );
    }
}
