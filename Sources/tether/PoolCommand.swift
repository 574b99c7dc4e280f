import ArgumentParser
import TetherWire

/// `tether pool set|list|delete`.
struct PoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "Manage pools: named slot limits that tasks of every DAG share.",
        discussion: """
            A task with `pool: NAME` (and `pool_slots: N`, default 1) runs only while the pool has
            N slots free; a queued task waits, saying so in `run show`, until it has. Tasks naming a
            pool that does not exist wait until it is created.
            """,
        subcommands: [Set.self, List.self, Delete.self]
    )

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a pool or change its size.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Pool name.") var name: String
        @Argument(help: "Its size in slots, 0 to 100000.") var slots: UInt32

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.SetPoolRequest()
                request.name = name
                request.slots = slots
                let response: ControlV1.SetPoolResponse = try await control.call(ControlV1.ControlService.setPool, request)
                try emit(response, json: client.json) { PoolCommand.printPools(response.pool.map { [$0] } ?? []) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List pools with their use.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await withControl(client) { control in
                let response: ControlV1.ListPoolsResponse = try await control.call(ControlV1.ControlService.listPools,
                                                                                  ControlV1.ListPoolsRequest())
                try emit(response, json: client.json) { PoolCommand.printPools(response.pools) }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a pool; running attempts go on, queued tasks naming it wait until it exists again.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Pool name.") var name: String

        func run() async throws {
            try await withControl(client) { control in
                var request = ControlV1.DeletePoolRequest()
                request.name = name
                let response: ControlV1.DeletePoolResponse = try await control.call(ControlV1.ControlService.deletePool, request)
                try emit(response, json: client.json) { print("pool \(name) deleted") }
            }
        }
    }

    static func printPools(_ pools: [ControlV1.Pool]) {
        printTable(["POOL", "SLOTS", "USED", "WAITING", "UPDATED"], pools.map {
            [$0.name, String($0.slots), String($0.used), String($0.waiting), formatTime($0.updatedAtUnixUs)]
        })
    }
}
