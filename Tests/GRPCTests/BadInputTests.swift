import Foundation
import Testing
import TetherTestSupport

/// Bad input from the network (issue 4, invariant 6 of ARCHITECTURE.md): each attack in
/// Tests/Interop/h2_attacks.py is crafted frame by frame against a `tether-echo serve` of
/// its own. The script checks the server's answer on the wire (GOAWAY and its code,
/// RST_STREAM and its code, the HTTP or gRPC status) and that a connection opened before
/// the attack and one opened after it still complete an Echo call; here we check the server
/// process is still running afterwards and exits 0 on SIGTERM.
///
/// One attack at a time: the cases watch the server's memory and time their floods, and
/// each runs two processes; several at once would also slow every other suite down.
@Suite(.serialized) struct BadInputTests {
    /// One case of the script and the answer it proves.
    struct Attack: Sendable, CustomTestStringConvertible {
        let name: String
        let answer: String
        init(_ name: String, _ answer: String) {
            self.name = name
            self.answer = answer
        }
        var testDescription: String { "\(name) -> \(answer)" }
    }

    static let script = Repository.root.appendingPathComponent("Tests/Interop/h2_attacks.py").path

    /// Every attack that needs no particular transport.
    static let attacks: [Attack] = [
        Attack("bad_connection_preface", "GOAWAY(PROTOCOL_ERROR), close"),
        Attack("http1_request_instead_of_http2", "GOAWAY(PROTOCOL_ERROR), close"),
        Attack("garbage_bytes_after_preface", "GOAWAY(FRAME_SIZE_ERROR), close"),
        Attack("oversized_header_block", "RST_STREAM(INTERNAL_ERROR); the connection serves on"),
        Attack("continuation_flood", "GOAWAY(ENHANCE_YOUR_CALM), close"),
        Attack("rapid_reset", "GOAWAY(INTERNAL_ERROR) after about 1,000 resets, close"),
        Attack("settings_flood", "GOAWAY(ENHANCE_YOUR_CALM), close"),
        Attack("settings_with_too_many_entries", "GOAWAY(ENHANCE_YOUR_CALM), close"),
        Attack("ping_flood", "GOAWAY(ENHANCE_YOUR_CALM), close"),
        Attack("zero_window_reader", "response headers, no DATA, RSS grows < 64 MiB"),
        Attack("stalled_reader", "RSS grows < 64 MiB while a 1.6 GB response goes unread"),
        Attack("request_flood_into_slow_handler", "one stream window accepted until the handler reads"),
        Attack("length_prefix_announcing_4gib", "RESOURCE_EXHAUSTED, RST_STREAM(NO_ERROR), no allocation"),
        Attack("bad_text_in_string_fields", "INVALID_ARGUMENT naming the field; non-protobuf bytes INTERNAL"),
        Attack("truncated_message", "INTERNAL"),
        Attack("stream_id_reused", "GOAWAY(STREAM_CLOSED), close"),
        Attack("stream_id_going_backwards", "header block ignored; the connection serves on"),
        Attack("even_stream_id_from_client", "GOAWAY(PROTOCOL_ERROR), close"),
        Attack("request_without_path", "RST_STREAM(PROTOCOL_ERROR)"),
        Attack("get_instead_of_post", "HTTP 405"),
        Attack("wrong_content_type", "HTTP 415"),
        Attack("malformed_and_unknown_method_paths", "UNIMPLEMENTED"),
    ]

    /// Attacks on the TLS layer itself.
    static let tlsAttacks: [Attack] = [
        Attack("garbage_bytes_instead_of_tls_handshake", "connection closed"),
        Attack("tls_without_alpn", "handshake fails with no_application_protocol"),
        Attack("tls_offering_only_http11", "handshake fails with no_application_protocol"),
    ]

    /// Over h2c, a server for each attack.
    @Suite struct OverH2C {
        @Test(arguments: BadInputTests.attacks)
        func serverAnswersAttackAndKeepsServing(_ attack: Attack) async throws {
            try await BadInputTests.expectSurvival(attack, tls: false)
        }
    }

    /// Over TLS: the attacks on TLS itself (a server each), then every other attack in a
    /// row against one server, which must answer each and survive them all.
    @Suite struct OverTLS {
        @Test(arguments: BadInputTests.tlsAttacks)
        func serverAnswersAttackAndKeepsServing(_ attack: Attack) async throws {
            try await BadInputTests.expectSurvival(attack, tls: true)
        }

        @Test func oneServerAnswersEveryOtherAttackInARowAndKeepsServing() async throws {
            try await BadInputTests.expectSurvival(BadInputTests.attacks, tls: true)
        }
    }

    @Test func everyCaseOfTheScriptIsATest() throws {
        for (tls, expected) in [(false, Self.attacks), (true, Self.tlsAttacks + Self.attacks)] {
            let result = try runProcess(Repository.python, [Self.script, "--list"] + (tls ? ["--tls"] : []))
            #expect(result.status == 0, "\(result.stderr)")
            let listed = result.stdout.split(separator: "\n").map(String.init)
            #expect(Set(listed) == Set(expected.map(\.name)), "tls: \(tls)")
        }
    }

    /// What became of one attack: the script's run, and the server afterwards.
    struct Outcome: Sendable {
        let script: ProcessResult
        let serverWasRunning: Bool
        let serverExitStatus: Int32
    }

    static func expectSurvival(_ attack: Attack, tls: Bool) async throws {
        try await expectSurvival([attack], tls: tls)
    }

    /// Runs `attacks` in a row against one server.
    static func expectSurvival(_ attacks: [Attack], tls: Bool) async throws {
        let names = attacks.map(\.name)
        let outcome = try await onThreadOfItsOwn { try run(names, tls: tls) }
        let output = outcome.script.stdout + outcome.script.stderr
        #expect(outcome.script.status == 0, "\(output)")
        #expect(outcome.script.stdout.contains("\(names.count) passed, 0 failed"), "\(output)")
        #expect(outcome.serverWasRunning, "the server died")
        #expect(outcome.serverExitStatus == 0, "the server did not exit cleanly on SIGTERM")
    }

    /// Starts a server, runs the named cases of the script against it, stops the server. Blocks.
    private static func run(_ names: [String], tls: Bool) throws -> Outcome {
        var serverArguments = ["serve", "--listen", "127.0.0.1:0"]
        var scriptArguments: [String] = []
        if tls {
            let certs = try TestCertificates.make()
            serverArguments += ["--tls-cert", certs.serverCert, "--tls-key", certs.serverKey]
            scriptArguments += ["--tls", "--ca", certs.caCert]
        }
        let server = try ChildProcess(Repository.binary("tether-echo"), serverArguments, readyPrefix: "listening on")
        // Over TLS, connect by the name in the certificate.
        let port = server.listeningAddress.split(separator: ":").last.map(String.init) ?? ""
        let address = tls ? "localhost:\(port)" : server.listeningAddress
        let result = try runProcess(Repository.python, [Self.script, address] + names
                                    + ["--server-pid", String(server.process.processIdentifier)] + scriptArguments)
        let running = server.process.isRunning
        return Outcome(script: result, serverWasRunning: running, serverExitStatus: server.stop())
    }
}
