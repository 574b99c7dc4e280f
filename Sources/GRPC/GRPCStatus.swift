/// A gRPC status code, as in the public gRPC status code list (`doc/statuscodes.md`).
///
/// A struct rather than an enum so that a code this library does not know (a peer on a newer
/// gRPC) can still be carried and printed; the 17 known codes are static members.
public struct GRPCStatusCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The code's number as it appears in `grpc-status`.
    public let rawValue: Int

    /// Wraps any number, known or not.
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// 0: not an error.
    public static let ok = GRPCStatusCode(rawValue: 0)
    /// 1: the operation was cancelled, typically by the caller.
    public static let cancelled = GRPCStatusCode(rawValue: 1)
    /// 2: an error with no better code, or from another error space.
    public static let unknown = GRPCStatusCode(rawValue: 2)
    /// 3: the client sent an invalid argument, whatever the system's state.
    public static let invalidArgument = GRPCStatusCode(rawValue: 3)
    /// 4: the deadline expired before the operation completed.
    public static let deadlineExceeded = GRPCStatusCode(rawValue: 4)
    /// 5: a requested entity was not found.
    public static let notFound = GRPCStatusCode(rawValue: 5)
    /// 6: the entity a client tried to create already exists.
    public static let alreadyExists = GRPCStatusCode(rawValue: 6)
    /// 7: the caller may not perform the operation.
    public static let permissionDenied = GRPCStatusCode(rawValue: 7)
    /// 8: a resource (quota, memory, message size) is exhausted.
    public static let resourceExhausted = GRPCStatusCode(rawValue: 8)
    /// 9: the system is not in a state the operation requires.
    public static let failedPrecondition = GRPCStatusCode(rawValue: 9)
    /// 10: the operation was aborted (concurrency conflict, fencing).
    public static let aborted = GRPCStatusCode(rawValue: 10)
    /// 11: the operation went past the valid range.
    public static let outOfRange = GRPCStatusCode(rawValue: 11)
    /// 12: the operation is not implemented or supported.
    public static let unimplemented = GRPCStatusCode(rawValue: 12)
    /// 13: an invariant the system relies on is broken.
    public static let `internal` = GRPCStatusCode(rawValue: 13)
    /// 14: the service is currently unavailable; retrying may succeed.
    public static let unavailable = GRPCStatusCode(rawValue: 14)
    /// 15: unrecoverable data loss or corruption.
    public static let dataLoss = GRPCStatusCode(rawValue: 15)
    /// 16: the request has no valid authentication credentials.
    public static let unauthenticated = GRPCStatusCode(rawValue: 16)

    private static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    ]

    /// Whether the code is one of the 17 the gRPC status code list defines.
    public var isKnown: Bool { Self.names.indices.contains(rawValue) }

    /// The code's canonical name, e.g. `UNAVAILABLE`; `CODE_17` for an unknown number.
    public var description: String { isKnown ? Self.names[rawValue] : "CODE_\(rawValue)" }

    /// The code a client reports for a response that is not gRPC (no `grpc-status`), from
    /// its HTTP status, per gRPC's `doc/http-grpc-status-mapping.md`: 400 → INTERNAL,
    /// 401 → UNAUTHENTICATED, 403 → PERMISSION_DENIED, 404 → UNIMPLEMENTED,
    /// 429/502/503/504 → UNAVAILABLE, anything else (200 included) → UNKNOWN.
    public init(httpStatus: Int) {
        switch httpStatus {
        case 400: self = .internal
        case 401: self = .unauthenticated
        case 403: self = .permissionDenied
        case 404: self = .unimplemented
        case 429, 502, 503, 504: self = .unavailable
        default: self = .unknown
        }
    }
}

/// The outcome of a call: a code, a human-readable message and the trailing metadata the
/// server sent (or will send) with it. Thrown as an `Error` wherever a call fails.
public struct GRPCStatus: Error, Hashable, Sendable, CustomStringConvertible {
    /// What happened.
    public var code: GRPCStatusCode
    /// Free text for the developer (not the end user); empty when there is nothing to say.
    /// Any Unicode: it is percent-encoded on the wire.
    public var message: String
    /// Custom metadata sent in the trailers with `grpc-status`; empty when there is none.
    public var trailingMetadata: GRPCMetadata

    /// A status; `trailingMetadata` defaults to none.
    public init(code: GRPCStatusCode, message: String = "", trailingMetadata: GRPCMetadata = GRPCMetadata()) {
        self.code = code
        self.message = message
        self.trailingMetadata = trailingMetadata
    }

    /// Success, with no message and no trailing metadata.
    public static let ok = GRPCStatus(code: .ok)

    /// `UNAVAILABLE: connection reset`, or just the code's name when the message is empty.
    public var description: String { message.isEmpty ? code.description : "\(code): \(message)" }
}

// MARK: - Trailers

extension GRPCStatus {
    /// The trailer fields that carry this status, in the order the spec asks for:
    /// `grpc-status`, `grpc-message` (percent-encoded; left out when the message is empty),
    /// then the trailing metadata. A server sends them in the final HEADERS frame; for a
    /// Trailers-Only response the transport puts `:status` and `content-type` in front.
    public var wireTrailers: [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [("grpc-status", String(code.rawValue))]
        if !message.isEmpty {
            fields.append(("grpc-message", GRPCPercentEncoding.encode(message)))
        }
        fields.append(contentsOf: trailingMetadata.wireHeaders)
        return fields
    }

    /// The status a client reports for a received trailer block (or Trailers-Only block).
    /// Never fails: the spec asks the client to synthesize a status when the peer sends none.
    ///
    /// - `grpc-status` present: its code (a number the spec does not define, or a value that
    ///   is not a number, becomes UNKNOWN, as grpc-java does), and `grpc-message` decoded.
    /// - `grpc-status` absent and `:status` present but not 200: the HTTP mapping of
    ///   ``GRPCStatusCode/init(httpStatus:)``.
    /// - otherwise UNKNOWN, "missing grpc-status".
    ///
    /// Reserved fields are left out of ``trailingMetadata``.
    public init(wireTrailers fields: [(name: String, value: String)]) {
        var statusField: String?
        var messageField: String?
        var httpStatus: String?
        for field in fields {
            switch field.name {
            case "grpc-status" where statusField == nil: statusField = field.value
            case "grpc-message" where messageField == nil: messageField = field.value
            case ":status" where httpStatus == nil: httpStatus = field.value
            default: break
            }
        }
        let metadata = GRPCMetadata(wireHeaders: fields)
        let message = messageField.map(GRPCPercentEncoding.decode) ?? ""

        if let statusField {
            if let number = Self.parseStatusNumber(statusField), GRPCStatusCode(rawValue: number).isKnown {
                self.init(code: GRPCStatusCode(rawValue: number), message: message, trailingMetadata: metadata)
            } else {
                let text = message.isEmpty ? "invalid grpc-status '\(statusField)'" : message
                self.init(code: .unknown, message: text, trailingMetadata: metadata)
            }
        } else if let httpStatus, httpStatus != "200" {
            let code = Int(httpStatus).map(GRPCStatusCode.init(httpStatus:)) ?? .unknown
            self.init(code: code, message: "HTTP status \(httpStatus) without grpc-status", trailingMetadata: metadata)
        } else {
            self.init(code: .unknown, message: "missing grpc-status", trailingMetadata: metadata)
        }
    }

    /// 1 to 9 ASCII digits; longer or anything else is `nil` (no status code is that large).
    private static func parseStatusNumber(_ text: String) -> Int? {
        let utf8 = text.utf8
        guard (1...9).contains(utf8.count) else { return nil }
        var value = 0
        for byte in utf8 {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
            value = value * 10 + Int(byte &- UInt8(ascii: "0"))
        }
        return value
    }
}
