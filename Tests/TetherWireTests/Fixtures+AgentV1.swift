@testable import TetherWire

extension Fixtures {
    static let unicode = "ünïcødé-日本-🚀"

    static var hello: AgentV1.Hello {
        var m = AgentV1.Hello()
        m.name = "eu-gpu-1"
        m.version = "0.1.0-\(unicode)"
        m.queues = ["default", "gpu", unicode]
        m.slots = 8
        m.labels = ["region": "eu-west", "": "empty-key", unicode: unicode]
        m.entrypoints = ["extract", "load", "train"]
        m.resumedLeases = [.init(leaseID: "l-1", epoch: 1), .init(leaseID: "l-2", epoch: .max), .init(leaseID: unicode, epoch: 7)]
        m.instanceID = "7f3c"
        return m
    }

    static var heartbeat: AgentV1.Heartbeat {
        var delta = AgentV1.MetricDelta()
        delta.name = "tasks_started_total"
        delta.labels = ["queue": "gpu", "entrypoint": "train", "x": unicode]
        delta.kind = .counter
        delta.value = 3.25
        var gauge = delta
        gauge.kind = .gauge
        gauge.value = -.greatestFiniteMagnitude
        var m = AgentV1.Heartbeat()
        m.freeSlots = .max
        m.activeLeaseIds = ["l-1", "l-2", unicode]
        m.metricDeltas = [delta, gauge, delta]
        m.sentAtUnixUs = 1_764_075_600_000_000
        m.heartbeatID = .max
        return m
    }

    static var taskEvent: AgentV1.TaskEvent {
        var usage = AgentV1.ResourceUsage()
        usage.wallMs = 1234
        usage.userCpuMs = 1000
        usage.systemCpuMs = 55
        usage.maxRssKib = .max
        var m = AgentV1.TaskEvent()
        m.sequence = 42
        m.leaseID = "l-1"
        m.epoch = 3
        m.kind = .failed
        m.occurredAtUnixUs = .max
        m.exitStatus = .init(.exitCode(-1))
        m.resourceUsage = usage
        m.startedAtUnixUs = .min
        m.finishedAtUnixUs = 1
        m.message = "exit \(unicode)"
        return m
    }

    static var goodbye: AgentV1.Goodbye {
        var m = AgentV1.Goodbye()
        m.reason = .draining
        m.message = unicode
        return m
    }

    static var welcome: AgentV1.Welcome {
        var m = AgentV1.Welcome()
        m.agentID = "a-1"
        m.heartbeatIntervalMs = 5000
        m.leaseTtlMs = 30000
        m.confirmedLeaseIds = ["l-1", "l-2", unicode]
        m.ackedSequence = .max
        m.serverVersion = "0.1.0"
        m.acknowledgesHeartbeats = true
        return m
    }

    static var leaseGrant: AgentV1.LeaseGrant {
        var ref = AgentV1.TaskRef()
        ref.dagID = "nightly_etl"
        ref.dagVersion = .max
        ref.runID = "r-1"
        ref.taskID = unicode
        var m = AgentV1.LeaseGrant()
        m.leaseID = "l-1"
        m.epoch = 9
        m.task = ref
        m.entrypoint = "load"
        m.params = ["date": "2026-11-25", "json": #"{"a":[1,2]}"#, unicode: ""]
        m.timeoutMs = 1_800_000
        m.attempt = 2
        m.grantedAtUnixUs = 1_764_075_600_123_456
        m.logicalTimeUnixUs = 1_764_028_800_000_000
        m.dataIntervalStartUnixUs = 1_763_942_400_000_000
        m.dataIntervalEndUnixUs = 1_764_028_800_000_000
        return m
    }

    static var leaseRevoke: AgentV1.LeaseRevoke {
        var m = AgentV1.LeaseRevoke()
        m.leaseID = "l-1"
        m.epoch = 9
        m.reason = .superseded
        m.message = unicode
        return m
    }

    static var ack: AgentV1.Ack {
        var rejection = AgentV1.EventRejection()
        rejection.sequence = 7
        rejection.leaseID = "l-9"
        rejection.reason = "stale epoch 3, current 4"
        var second = rejection
        second.sequence = 8
        second.reason = unicode
        var m = AgentV1.Ack()
        m.sequence = 8
        m.rejections = [rejection, second, rejection]
        return m
    }

    static var drain: AgentV1.Drain {
        var m = AgentV1.Drain()
        m.reason = "maintenance \(unicode)"
        return m
    }

    static let agentV1: [any WireMessage] = [
        AgentV1.AgentMessage(.hello(hello)),
        AgentV1.AgentMessage(.heartbeat(heartbeat)),
        AgentV1.AgentMessage(.taskEvent(taskEvent)),
        AgentV1.AgentMessage(.goodbye(goodbye)),
        hello, hello.resumedLeases[1], heartbeat, heartbeat.metricDeltas[1], taskEvent,
        AgentV1.ExitStatus(.exitCode(0)), AgentV1.ExitStatus(.exitCode(.min)), AgentV1.ExitStatus(.signal(9)),
        taskEvent.resourceUsage!, goodbye,
        AgentV1.ServerMessage(.welcome(welcome)),
        AgentV1.ServerMessage(.leaseGrant(leaseGrant)),
        AgentV1.ServerMessage(.leaseRevoke(leaseRevoke)),
        AgentV1.ServerMessage(.ack(ack)),
        AgentV1.ServerMessage(.drain(drain)),
        AgentV1.ServerMessage(.heartbeatAck(AgentV1.HeartbeatAck(heartbeatID: 7))),
        welcome, leaseGrant.task!, leaseGrant, leaseRevoke, ack, ack.rejections[1], drain, AgentV1.HeartbeatAck(heartbeatID: .max),
    ]

    static let healthV1: [any WireMessage] = {
        var request = HealthV1.HealthCheckRequest()
        request.service = "tether.control.v1.ControlService"
        var response = HealthV1.HealthCheckResponse()
        response.status = .serviceUnknown
        return [request, response]
    }()
}

extension Fixtures {
    static let echoV1: [any WireMessage] = {
        var request = TestingV1.EchoRequest()
        request.payload = [0, 1, 2, 0xFF, 0, 0x80]
        request.text = unicode
        request.repeat = 3
        request.delayMs = .max
        request.failWithCode = 14
        request.failWithMessage = "unavailable \(unicode)"
        request.responseSize = .max
        var response = TestingV1.EchoResponse()
        response.payload = Array(repeating: 0, count: 1000) + [1]
        response.text = unicode
        response.index = 2
        response.metadata = ["a=1", "b-bin=AAE", unicode]
        return [request, response]
    }()
}
