import Testing
import GRPC

/// Server URLs as the CLI and agents take them.
@Suite struct GRPCTargetTests {
    @Test(arguments: [
        ("https://tether.example.com", "https://tether.example.com:7443"),
        ("https://tether.example.com:8443/", "https://tether.example.com:8443"),
        ("http://127.0.0.1:7080", "http://127.0.0.1:7080"),
        ("https://[::1]", "https://[::1]:7443"),
        ("https://[fe80::1]:9000", "https://[fe80::1]:9000"),
    ])
    func aURLIsTakenApartWithTheDefaultPortWhenItHasNone(url: String, expected: String) throws {
        #expect(try GRPCTarget(url: url, defaultPort: 7443).description == expected)
    }

    @Test(arguments: [
        ("tether.example.com", "must start with https://"),
        ("https://", "is not scheme://host[:port]"),
        ("https://host/path", "is not scheme://host[:port]"),
        ("https://user@host", "is not scheme://host[:port]"),
        ("https://ho st", "has a bad host"),
        ("https://host?x=1", "has a bad host"),
        ("https://host:0", "has a bad port '0'"),
        ("https://host:99999", "has a bad port '99999'"),
        ("https://host:", "has a bad port ''"),
        ("https://[::1", "has an unclosed ["),
        ("https://[::1]x", "has text after the host"),
        ("https://[zz::1]", "has a bad IPv6 address"),
    ])
    func aBadURLIsRefusedSayingWhy(url: String, reason: String) {
        #expect {
            try GRPCTarget(url: url, defaultPort: 7443)
        } throws: { error in
            (error as? GRPCTargetError)?.reason.hasPrefix(reason) == true
        }
    }
}
