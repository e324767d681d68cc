// SQLSTATE codes pgrelay sends itself (https://www.postgresql.org/docs/15/errcodes-appendix.html).
#pragma once

namespace pgrelay::sqlstate {

inline constexpr const char* kConnectionException = "08000";
inline constexpr const char* kUnableToEstablishConnection = "08001";
inline constexpr const char* kConnectionFailure = "08006";
inline constexpr const char* kProtocolViolation = "08P01";
inline constexpr const char* kFeatureNotSupported = "0A000";
inline constexpr const char* kInvalidAuthorization = "28000";
inline constexpr const char* kInvalidPassword = "28P01";
inline constexpr const char* kIdleInTransactionTimeout = "25P03";
inline constexpr const char* kInvalidCatalogName = "3D000";   // unknown database
inline constexpr const char* kSyntaxError = "42601";
inline constexpr const char* kDuplicatePreparedStatement = "42P05";
inline constexpr const char* kInsufficientPrivilege = "42501";
inline constexpr const char* kTooManyConnections = "53300";
inline constexpr const char* kProgramLimitExceeded = "54000";
inline constexpr const char* kLockNotAvailable = "55P03";   // lock_timeout
inline constexpr const char* kQueryCanceled = "57014";
inline constexpr const char* kAdminShutdown = "57P01";
inline constexpr const char* kCannotConnectNow = "57P03";
inline constexpr const char* kInternalError = "XX000";

}  // namespace pgrelay::sqlstate
