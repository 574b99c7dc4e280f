import Testing
@testable import GRPC

/// HTTPS_PROXY / HTTP_PROXY / NO_PROXY as `ProxySettings.fromEnvironment` reads them.
@Suite struct ProxySettingsTests {
    static func proxy(_ environment: [String: String], _ target: String = "tether.example.com:443",
                      tls: Bool = true) throws -> ProxySettings? {
        try ProxySettings.fromEnvironment(environment, target: target, tls: tls)
    }

    static func error(_ body: () throws -> Any?) -> String? {
        do {
            _ = try body()
            return nil
        } catch {
            return "\(error)"
        }
    }

    // MARK: - Which variable

    @Test func nothingSetMeansNoProxy() throws {
        #expect(try Self.proxy([:]) == nil)
        #expect(try Self.proxy(["HTTPS_PROXY": "", "https_proxy": "  "]) == nil)
    }

    @Test func tlsTargetsUseHTTPSProxyAndLowerCaseWins() throws {
        #expect(try Self.proxy(["HTTPS_PROXY": "http://upper:1"])?.host == "upper")
        #expect(try Self.proxy(["https_proxy": "http://lower:1"])?.host == "lower")
        #expect(try Self.proxy(["HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:1"])?.host == "lower")
        #expect(try Self.proxy(["HTTPS_PROXY": "http://upper:1", "https_proxy": ""])?.host == "upper")
        #expect(try Self.proxy(["HTTP_PROXY": "http://plain:1", "http_proxy": "http://plain:1"]) == nil)
    }

    @Test func h2cTargetsUseHTTPProxyAndLowerCaseWins() throws {
        #expect(try Self.proxy(["HTTP_PROXY": "http://upper:1"], tls: false)?.host == "upper")
        #expect(try Self.proxy(["HTTP_PROXY": "http://upper:1", "http_proxy": "http://lower:1"], tls: false)?.host == "lower")
        #expect(try Self.proxy(["HTTPS_PROXY": "http://secure:1"], tls: false) == nil)
    }

    // MARK: - Proxy URLs

    @Test func proxyURLFormsParse() throws {
        #expect(try ProxySettings(url: "http://proxy.corp:8080") == ProxySettings(host: "proxy.corp", port: 8080))
        #expect(try ProxySettings(url: "HTTP://Proxy.Corp:8080/") == ProxySettings(host: "Proxy.Corp", port: 8080))
        #expect(try ProxySettings(url: "proxy.corp:3128") == ProxySettings(host: "proxy.corp", port: 3128))
        #expect(try ProxySettings(url: " http://10.0.0.1 ") == ProxySettings(host: "10.0.0.1", port: 80))
        #expect(try ProxySettings(url: "http://[fd00::1]:3128") == ProxySettings(host: "fd00::1", port: 3128))
        #expect(try ProxySettings(url: "http://[fd00::1]") == ProxySettings(host: "fd00::1", port: ProxySettings.defaultPort))
        #expect(try ProxySettings(url: "http://agent:p%40ss%3Aw%C3%B6rd@proxy:3128")
                == ProxySettings(host: "proxy", port: 3128, username: "agent", password: "p@ss:wörd"))
        #expect(try ProxySettings(url: "http://agent@proxy:3128")
                == ProxySettings(host: "proxy", port: 3128, username: "agent", password: nil))
        #expect(try ProxySettings(url: "http://agent:@proxy:3128")
                == ProxySettings(host: "proxy", port: 3128, username: "agent", password: ""))
    }

    @Test func badProxyURLsAreRejectedWithTheReason() {
        let cases = [
            "https://proxy:443": "https:// proxy URLs are not supported",
            "socks5://proxy:1080": "unsupported proxy scheme 'socks5://'",
            "http://": "bad proxy host ''",
            "http://proxy:0": "bad proxy port '0'",
            "http://proxy:65536": "bad proxy port '65536'",
            "http://proxy:http": "bad proxy port 'http'",
            "http://proxy:3128/some/path": "a proxy URL has no path or query",
            "http://pro xy:3128": "bad proxy host 'pro xy'",
            "http://[fd00::1:3128": "bad proxy host '[fd00::1:3128'",
            "http://agent:%zz@proxy:3128": "bad percent-encoding",
        ]
        for (url, reason) in cases {
            let error = Self.error { try ProxySettings(url: url) }
            #expect(error?.contains(reason) == true, "\(url): \(error ?? "accepted")")
        }
    }

    @Test func errorsFromTheEnvironmentNameTheVariableAndNeverThePassword() {
        let error = Self.error { try Self.proxy(["HTTPS_PROXY": "https://agent:s3cret@proxy:443"]) }
        #expect(error?.hasPrefix("HTTPS_PROXY: https:// proxy URLs are not supported") == true, "\(error ?? "accepted")")
        let port = Self.error { try Self.proxy(["https_proxy": "http://agent:s3cret@proxy:99999"]) }
        #expect(port == "https_proxy: bad proxy port '99999': expected 1-65535")
    }

    @Test func aBadProxyURLIsAnErrorEvenForAnExemptTarget() {
        let error = Self.error { try Self.proxy(["HTTPS_PROXY": "https://proxy", "NO_PROXY": "*"]) }
        #expect(error?.hasPrefix("HTTPS_PROXY:") == true)
    }

    @Test func aBadTargetIsAnError() {
        #expect(Self.error { try Self.proxy(["HTTPS_PROXY": "proxy"], "tether.example.com") }
                == "bad target 'tether.example.com': expected HOST:PORT")
    }

    // MARK: - NO_PROXY

    /// Whether `noProxy` exempts `target`.
    static func bypassed(_ noProxy: String, _ target: String, variable: String = "NO_PROXY") throws -> Bool {
        try proxy(["HTTPS_PROXY": "http://proxy:3128", variable: noProxy], target) == nil
    }

    @Test func starExemptsEverything() throws {
        #expect(try Self.bypassed("*", "tether.example.com:443"))
        #expect(try Self.bypassed("internal, *", "10.1.2.3:443"))
    }

    @Test func hostNamesMatchThemselvesAndSubdomainsOnDotBoundaries() throws {
        #expect(try Self.bypassed("example.com", "example.com:443"))
        #expect(try Self.bypassed("example.com", "tether.example.com:443"))
        #expect(try Self.bypassed("Example.COM.", "TETHER.example.com.:443"))
        #expect(try !Self.bypassed("example.com", "notexample.com:443"))
        #expect(try !Self.bypassed("example.com", "example.com.evil.net:443"))
        #expect(try !Self.bypassed("tether.example.com", "example.com:443"))
    }

    @Test func aLeadingDotOrStarDotIsIgnored() throws {
        for entry in [".example.com", "*.example.com"] {
            #expect(try Self.bypassed(entry, "example.com:443"), "\(entry)")
            #expect(try Self.bypassed(entry, "a.b.example.com:443"), "\(entry)")
            #expect(try !Self.bypassed(entry, "badexample.com:443"), "\(entry)")
        }
    }

    @Test func ipLiteralsMatchExactly() throws {
        #expect(try Self.bypassed("10.0.0.1", "10.0.0.1:443"))
        #expect(try !Self.bypassed("0.0.1", "10.0.0.1:443"))
        #expect(try !Self.bypassed("10.0.0.1", "110.0.0.1:443"))
        #expect(try Self.bypassed("::1", "[::1]:443"))
        #expect(try Self.bypassed("[0:0::1]", "[::1]:443"))
        #expect(try !Self.bypassed("::2", "[::1]:443"))
    }

    @Test func aPortLimitsTheEntryToThatPort() throws {
        #expect(try Self.bypassed("example.com:443", "tether.example.com:443"))
        #expect(try !Self.bypassed("example.com:443", "tether.example.com:8443"))
        #expect(try Self.bypassed("10.0.0.1:443", "10.0.0.1:443"))
        #expect(try !Self.bypassed("10.0.0.1:80", "10.0.0.1:443"))
        #expect(try Self.bypassed("[::1]:443", "[::1]:443"))
        #expect(try !Self.bypassed("[::1]:80", "[::1]:443"))
    }

    @Test func listsAreCommaSeparatedWithSpacesAndEmptyEntriesIgnored() throws {
        #expect(try Self.bypassed(" internal.corp , ,example.com ", "tether.example.com:443"))
        #expect(try !Self.bypassed(",,", "tether.example.com:443"))
        #expect(try !Self.bypassed(".", "tether.example.com:443"))
    }

    @Test func lowerCaseNoProxyWins() throws {
        let environment = ["HTTPS_PROXY": "http://proxy:3128", "no_proxy": "other.net", "NO_PROXY": "example.com"]
        #expect(try Self.proxy(environment, "tether.example.com:443") != nil)
        #expect(try Self.bypassed("example.com", "tether.example.com:443", variable: "no_proxy"))
    }

    @Test func loopbackIsNotExemptUnlessListed() throws {
        for target in ["127.0.0.1:443", "localhost:443", "[::1]:443"] {
            #expect(try !Self.bypassed("", target), "\(target)")
            #expect(try Self.bypassed("localhost,127.0.0.1,::1", target), "\(target)")
        }
    }
}
