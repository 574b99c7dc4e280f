import Testing
@testable import GRPC

@Suite struct GRPCStatusTests {
    @Test func statusCodeKeepsItsNumber() {
        #expect(GRPCStatusCode(rawValue: 14).rawValue == 14)
    }
}
