import ArgumentParser
import Foundation
import TetherSyntax
import TetherWire

/// `tether token create|list|revoke`.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Manage bearer tokens.", subcommands: [Create.self, List.self, Revoke.self])

    enum Role: String, ExpressibleByArgument, CaseIterable {
        case viewer, `operator`, admin, agent

        var wire: ControlV1.TokenRole {
            switch self {
            case .viewer: .viewer
            case .operator: .operator
            case .admin: .admin
            case .agent: .agent
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token; its secret is printed once and never stored.",
            discussion: """
                Roles:
                  viewer    reads everything (DAGs, runs, pools, agents) and the dashboard
                  operator  a viewer that may also trigger, cancel, clear and backfill runs,
                            pause and unpause DAGs, drain and undrain agents
                  admin     everything: apply DAGs, pools, tokens, the audit log
                  agent     only the agent stream, as the one agent --agent-name names
                """)
        @OptionGroup var client: ClientOptions
        @Option(help: "viewer, operator, admin or agent.") var role: Role
        @Option(help: "What the token is for.") var description = ""
        @Option(help: "Lifetime, e.g. 30d or 12h (default: no expiry; at most 10 years).") var ttl: String?
        @Option(help: "The agent name an agent token is bound to (required with --role agent): it may connect as no other.") var agentName: String?

        func run() async throws {
            var ttlMilliseconds: Int64 = 0
            if let ttl {
                do {
                    ttlMilliseconds = try DurationText.milliseconds(parsing: ttl)
                } catch {
                    throw ValidationError("--ttl: \(error)")
                }
            }
            try await withControl(client) { control in
                var request = ControlV1.CreateTokenRequest()
                request.role = role.wire
                request.description = description
                request.ttlMs = UInt64(ttlMilliseconds)
                request.agentName = agentName ?? ""
                let response: ControlV1.CreateTokenResponse = try await control.call(ControlV1.ControlService.createToken, request)
                try emit(response, json: client.json) {
                    printError("token \(response.token?.tokenID ?? "?") (\(role.rawValue)); the secret below is shown only now:")
                    print(response.secret)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List tokens (never their secrets).",
            discussion: "LAST USED is when the token last authenticated a call; the server writes it to disk at most once a minute per token.")
        @OptionGroup var client: ClientOptions
        @Flag(help: "Include revoked and expired tokens.") var all = false

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.ListTokensRequest()
                request.includeInactive = all
                let response: ControlV1.ListTokensResponse = try await control.call(ControlV1.ControlService.listTokens, request)
                try emit(response, json: client.json) {
                    printTable(["TOKEN", "ROLE", "AGENT", "CREATED", "LAST USED", "EXPIRES", "REVOKED", "DESCRIPTION"],
                               response.tokens.map { token in
                        [token.tokenID, token.role.label, token.role == .agent ? (token.agentName.isEmpty ? "any" : token.agentName) : "-",
                         formatTime(token.createdAtUnixUs), formatTime(token.lastUsedAtUnixUs),
                         formatTime(token.expiresAtUnixUs), formatTime(token.revokedAtUnixUs), token.description]
                    })
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token; calls with it fail from now on, and agent streams opened with it end.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Token id.") var token: String

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.RevokeTokenRequest()
                request.tokenID = token
                let response: ControlV1.RevokeTokenResponse = try await control.call(ControlV1.ControlService.revokeToken, request)
                try emit(response, json: client.json) { print("\(token): revoked") }
            }
        }
    }
}
