import TetherWire

/// Rows of one list response, admitted while they fit in one message, so that no row and
/// no page size can make a listing fail for everyone (a run stored with megabytes of
/// params once made every `ListRuns` answer exceed the message limit).
///
/// A row that could never fit — larger than a whole response, or not encodable (text a
/// protobuf string cannot carry, stored before the limits) — is sent slimmed instead: the
/// caller's `slim` empties its free-form fields and says so where the message has room.
/// Value type; one per response.
struct ListResponseBudget {
    /// Bytes the rows of one response may take: stock gRPC clients refuse messages over
    /// 4 MiB by default, and the rest of a response (page token, framing) is small.
    static let responseBytes = WireLimits.defaultMaxMessageBytes - 16 * 1_024

    private var remaining: Int

    init(bytes: Int = Self.responseBytes) {
        remaining = bytes
    }

    enum Admission<Row> {
        /// Send this: the row, or the row slimmed.
        case send(Row)
        /// Even slimmed the row cannot be sent; leave it out and go on with the next.
        case leftOut
        /// The response is full; end it here (a paged listing hands out a cursor to
        /// continue from the last row sent).
        case full
    }

    /// Whether and how `row` goes into the response, charging it if it does.
    mutating func admit<Row: WireMessage>(_ row: Row, slim: (inout Row) -> Void) -> Admission<Row> {
        var row = row
        if Self.cost(of: row) > Self.responseBytes { slim(&row) }
        let cost = Self.cost(of: row)
        if cost > Self.responseBytes { return .leftOut }
        guard cost <= remaining else { return .full }
        remaining -= cost
        return .send(row)
    }

    /// One page of a paged listing: each of `sources`, in order, made a row and admitted
    /// while the response has room. The page token is the cursor of the last source sent
    /// or left out when the budget cut the page short, or when `more` says sources follow;
    /// empty otherwise.
    static func page<Source, Row: WireMessage>(
        _ sources: some Sequence<Source>, more: Bool, cursor: (Source) -> String,
        row: (Source) async throws -> Row, slim: (inout Row) -> Void
    ) async rethrows -> (rows: [Row], nextPageToken: String) {
        var budget = ListResponseBudget()
        var rows: [Row] = []
        var last: String?
        for source in sources {
            switch budget.admit(try await row(source), slim: slim) {
            case .send(let row): rows.append(row)
            case .leftOut: break
            case .full: return (rows, last ?? "")
            }
            last = cursor(source)
        }
        return (rows, more ? last ?? "" : "")
    }

    /// Encoded size with the repeated field's tag and length prefix (at most 6 bytes);
    /// an unencodable row costs more than any response, so it is slimmed.
    private static func cost<Row: WireMessage>(of row: Row) -> Int {
        guard let bytes = try? row.serializedBytes() else { return .max }
        return bytes.count + 6
    }
}

extension ControlV1.Run {
    /// The run without its params, which the note says were left out.
    mutating func slimForList() {
        let bytes = params.reduce(note.utf8.count) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        params = [:]
        note = "params and note left out of this list (\(bytes) bytes)"
    }
}

extension ControlV1.Dag {
    mutating func slimForList() { description = "" }
}

extension ControlV1.DagVersion {
    /// Identity and hash only: GetDag returns a version's spec and YAML one at a time.
    mutating func slimForList() {
        spec = nil
        specYaml = ""
    }
}

extension ControlV1.Agent {
    mutating func slimForList() {
        labels = [:]
        entrypoints = []
        queues = []
        metrics = []
        leaseIds = []
    }
}

extension ControlV1.Token {
    mutating func slimForList() { description = "" }
}
