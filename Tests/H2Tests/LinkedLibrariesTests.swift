import Testing
import H2

@Suite struct LinkedLibrariesTests {
    @Test func nghttp2IsAtLeastTheVersionWhoseFloodProtectionsWeUse() throws {
        let parts = LinkedLibraries.nghttp2.split(separator: ".").compactMap { Int($0) }
        #expect(parts.count == 3)
        #expect(parts.lexicographicallyPrecedes([1, 52, 0]) == false)
    }

    @Test func openSSLIsVersion3() {
        #expect(LinkedLibraries.openSSL.hasPrefix("OpenSSL 3."))
    }
}
