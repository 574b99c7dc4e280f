import TetherWire

/// Who may call a ControlService method, and whether the call is audited: the one table
/// of it. A new RPC adds one line here; `ControlAccessTests` fails for a method of
/// `control.proto` that has none (and such a method is served as admin-only and audited,
/// so a forgotten line fails closed).
struct ControlAccess: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// Changes nothing; not audited.
        case read
        /// Changes something (or hands out a secret): every call is audited, refused ones too.
        case write
    }

    /// The lowest role that may call it (`TokenRole.satisfies`).
    let least: TokenRole
    let kind: Kind

    static func read(_ least: TokenRole) -> ControlAccess { ControlAccess(least: least, kind: .read) }
    static func write(_ least: TokenRole) -> ControlAccess { ControlAccess(least: least, kind: .write) }

    private typealias Service = ControlV1.ControlService

    /// Method path -> access.
    static let table: [String: ControlAccess] = [
        Service.getDag.path: .read(.viewer),
        Service.listDags.path: .read(.viewer),
        Service.listDagVersions.path: .read(.viewer),
        Service.getRun.path: .read(.viewer),
        Service.listRuns.path: .read(.viewer),
        Service.listPools.path: .read(.viewer),
        Service.listAgents.path: .read(.viewer),
        Service.watchEvents.path: .read(.viewer),

        Service.triggerRun.path: .write(.operator),
        Service.cancelRun.path: .write(.operator),
        Service.cancelTaskInstance.path: .write(.operator),
        Service.clearRun.path: .write(.operator),
        Service.backfill.path: .write(.operator),
        Service.pauseDag.path: .write(.operator),
        Service.unpauseDag.path: .write(.operator),
        Service.drainAgent.path: .write(.operator),
        Service.undrainAgent.path: .write(.operator),
        Service.forgetAgent.path: .write(.operator),

        Service.applyDag.path: .write(.admin),
        Service.deleteDag.path: .write(.admin),
        Service.setPool.path: .write(.admin),
        Service.deletePool.path: .write(.admin),
        Service.createToken.path: .write(.admin),
        Service.revokeToken.path: .write(.admin),
        Service.listTokens.path: .read(.admin),
        Service.listAuditEntries.path: .read(.admin),
    ]

    /// A method missing from `table`: admin only, audited.
    static let unlisted = ControlAccess.write(.admin)

    static func of(_ path: String) -> ControlAccess { table[path] ?? unlisted }

    static func of<Request, Response, Shape>(_ method: RPCMethod<Request, Response, Shape>) -> ControlAccess {
        of(method.path)
    }

    /// "TriggerRun" of "/tether.control.v1.ControlService/TriggerRun".
    static func methodName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}
