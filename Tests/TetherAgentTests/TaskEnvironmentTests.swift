import Testing
import TetherAgent

@Suite struct TaskEnvironmentTests {
    @Test func paramNamesBecomeValidUpperCaseVariables() {
        #expect(TaskEnvironment.variableName(forParam: "batch_size") == "TETHER_PARAM_BATCH_SIZE")
        #expect(TaskEnvironment.variableName(forParam: "db.host-1") == "TETHER_PARAM_DB_HOST_1")
        #expect(TaskEnvironment.variableName(forParam: "é") == "TETHER_PARAM__")
    }
}
