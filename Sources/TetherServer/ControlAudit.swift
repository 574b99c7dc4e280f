import TetherWire

// What the audit log says about each ControlService write: its target and a short summary
// of its arguments (never a secret, never a run's param values, which may be sensitive),
// from the request and, where only the answer names it, the response. A write whose
// request does not conform is recorded with an empty target and summary.

/// A request the audit log can describe.
protocol AuditedRequest {
    /// "dag:…", "run:…", "task:RUN/TASK", "agent:…", "pool:…", "token:…", or "".
    var auditTarget: String { get }
    /// The arguments besides the target, in a few words.
    var auditSummary: String { get }
}

/// A response that names what the call made (a run, a version, a token).
protocol AuditedResponse {
    /// Replaces the request's target when not nil.
    var auditTarget: String? { get }
    /// Appended to the summary when not empty.
    var auditResult: String { get }
}

extension AuditedResponse {
    var auditTarget: String? { nil }
    var auditResult: String { "" }
}

enum AuditText {
    /// The most characters of a summary kept.
    static let maxSummary = 400

    /// The non-empty parts joined with ", ", clipped to `maxSummary`.
    static func summary(_ parts: [String?]) -> String {
        let text = parts.compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
        return text.count <= maxSummary ? text : String(text.prefix(maxSummary - 1)) + "…"
    }

    /// `name "value"` clipped to 80 characters, or nil for an empty value.
    static func quoted(_ name: String, _ value: String) -> String? {
        guard !value.isEmpty else { return nil }
        let clipped = value.count <= 80 ? value : String(value.prefix(79)) + "…"
        return "\(name) \"\(clipped)\""
    }

    /// A request's target and summary, and the response's additions when it succeeded.
    static func describe(_ request: any WireMessage, _ response: (any WireMessage)?) -> (target: String, summary: String) {
        let audited = request as? any AuditedRequest
        var target = audited?.auditTarget ?? ""
        var summary = audited?.auditSummary ?? ""
        if let response = response as? any AuditedResponse {
            target = response.auditTarget ?? target
            summary = Self.summary([summary, response.auditResult])
        }
        return (target, summary)
    }
}

extension ControlV1.ApplyDagRequest: AuditedRequest {
    var auditTarget: String { "" }
    var auditSummary: String { AuditText.summary([AuditText.quoted("source", sourceName), "\(specYaml.utf8.count) bytes of YAML"]) }
}

extension ControlV1.ApplyDagResponse: AuditedResponse {
    var auditTarget: String? { version.map { "dag:\($0.dagID)" } }
    var auditResult: String { version.map { "version \($0.version)" + (created ? " created" : " unchanged") } ?? "" }
}

extension ControlV1.PauseDagRequest: AuditedRequest {
    var auditTarget: String { "dag:\(dagID)" }
    var auditSummary: String { "" }
}

extension ControlV1.UnpauseDagRequest: AuditedRequest {
    var auditTarget: String { "dag:\(dagID)" }
    var auditSummary: String { "" }
}

extension ControlV1.TriggerRunRequest: AuditedRequest {
    var auditTarget: String { "dag:\(dagID)" }
    var auditSummary: String {
        AuditText.summary([params.isEmpty ? nil : "params " + params.keys.sorted().joined(separator: " "),
                           AuditText.quoted("idempotency key", idempotencyKey),
                           logicalTimeUnixUs == 0 ? nil : "logical time \(logicalTimeUnixUs) us",
                           AuditText.quoted("note", note)])
    }
}

extension ControlV1.TriggerRunResponse: AuditedResponse {
    var auditTarget: String? { run.map { "run:\($0.runID)" } }
    var auditResult: String { existing ? "existing run" : "" }
}

extension ControlV1.CancelRunRequest: AuditedRequest {
    var auditTarget: String { "run:\(runID)" }
    var auditSummary: String { AuditText.summary([AuditText.quoted("reason", reason)]) }
}

extension ControlV1.CancelTaskInstanceRequest: AuditedRequest {
    var auditTarget: String { "task:\(runID)/\(taskID)" }
    var auditSummary: String { AuditText.summary([AuditText.quoted("reason", reason)]) }
}

extension ControlV1.ClearRunRequest: AuditedRequest {
    var auditTarget: String { "run:\(runID)" }
    var auditSummary: String {
        AuditText.summary([taskIds.isEmpty ? "all tasks" : "tasks " + taskIds.prefix(20).joined(separator: " ") + (taskIds.count > 20 ? " …" : ""),
                           downstream ? "downstream" : nil, failedOnly ? "failed only" : nil])
    }
}

extension ControlV1.ClearRunResponse: AuditedResponse {
    var auditResult: String { "cleared \(clearedTaskIds.count)" }
}

extension ControlV1.BackfillRequest: AuditedRequest {
    var auditTarget: String { "dag:\(dagID)" }
    var auditSummary: String {
        AuditText.summary(["from \(fromUnixUs) us to \(toUnixUs) us", rerunFailed ? "rerun failed" : nil])
    }
}

extension ControlV1.BackfillResponse: AuditedResponse {
    var auditResult: String { "created \(created) runs" }
}

extension ControlV1.SetPoolRequest: AuditedRequest {
    var auditTarget: String { "pool:\(name)" }
    var auditSummary: String { "slots \(slots)" }
}

extension ControlV1.DeletePoolRequest: AuditedRequest {
    var auditTarget: String { "pool:\(name)" }
    var auditSummary: String { "" }
}

extension ControlV1.DrainAgentRequest: AuditedRequest {
    var auditTarget: String { "agent:\(agent)" }
    var auditSummary: String { AuditText.summary([AuditText.quoted("reason", reason)]) }
}

extension ControlV1.UndrainAgentRequest: AuditedRequest {
    var auditTarget: String { "agent:\(agent)" }
    var auditSummary: String { "" }
}

extension ControlV1.DeleteDagRequest: AuditedRequest {
    var auditTarget: String { "dag:\(dagID)" }
    var auditSummary: String { cancelRuns ? "cancel_runs" : "" }
}

extension ControlV1.ForgetAgentRequest: AuditedRequest {
    var auditTarget: String { "agent:\(agent)" }
    var auditSummary: String { "" }
}

extension ControlV1.CreateTokenRequest: AuditedRequest {
    var auditTarget: String { "" }
    var auditSummary: String {
        AuditText.summary(["role \(role.auditName)", AuditText.quoted("description", description),
                           ttlMs == 0 ? nil : "ttl \(ttlMs) ms", AuditText.quoted("agent name", agentName)])
    }
}

extension ControlV1.CreateTokenResponse: AuditedResponse {
    /// The new token's id; its secret never reaches the log.
    var auditTarget: String? { token.map { "token:\($0.tokenID)" } }
}

extension ControlV1.RevokeTokenRequest: AuditedRequest {
    var auditTarget: String { "token:\(tokenID)" }
    var auditSummary: String { "" }
}

extension ControlV1.TokenRole {
    var auditName: String {
        switch self {
        case .admin: "admin"
        case .agent: "agent"
        case .viewer: "viewer"
        case .operator: "operator"
        default: "unspecified"
        }
    }
}
