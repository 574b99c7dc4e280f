public import TetherScheduler
internal import Yams
import TetherSyntax
import TetherYAML

/// DAG files on disk: YAML in, `TetherScheduler.DAGSpec` out. The format is documented
/// in docs/dag-format.md.
///
/// Parsing is strict: unknown keys, wrong types and every `DAGSpec.validate()` rule are
/// errors, all reported at once with file, line, task and field. It never crashes and
/// stays cheap on hostile input (size cap, `YAMLExpansionBudget` on what aliases expand
/// to, libyaml's nesting cap), so the server may run it on specs received over the
/// network — off its event loops: a 1 MiB file still takes milliseconds. Pure function;
/// safe from any thread.
public enum DAGFile {
    /// Largest accepted file: 1 MiB.
    public static let maxInputBytes = 1 << 20
    /// Most nodes (scalars, lists, mappings) a file may expand to, an alias counting as a
    /// copy of what it names.
    public static let maxExpandedNodes = 100_000
    /// Most bytes of scalar text a file may expand to, aliases counted likewise.
    public static let maxExpandedTextBytes = 4 << 20

    /// Parses and validates the DAG file `yaml`.
    ///
    /// - Parameter sourceName: Names the file in error messages (a path, or "<stdin>").
    /// - Returns: The spec with every default applied; it passes `validate()`.
    /// - Throws: `DAGFileError` listing every problem found.
    public static func parse(yaml: String, sourceName: String) throws(DAGFileError) -> DAGSpec {
        try parse(utf8: yaml.utf8, text: yaml, sourceName: sourceName)
    }

    /// Parses and validates a DAG file given as raw bytes, rejecting bytes that are not
    /// UTF-8 (with the line of the first bad byte).
    ///
    /// - Throws: `DAGFileError` listing every problem found.
    public static func parse(bytes: [UInt8], sourceName: String) throws(DAGFileError) -> DAGSpec {
        try parse(utf8: bytes, text: nil, sourceName: sourceName)
    }

    private static func parse(utf8: some Collection<UInt8>, text: String?, sourceName: String) throws(DAGFileError) -> DAGSpec {
        func failure(_ problems: [(line: Int?, message: String)]) -> DAGFileError {
            DAGFileError(sourceName: sourceName, problems: problems.map { DAGFileProblem(sourceName: sourceName, line: $0.line, message: $0.message) })
        }
        let screened = DAGFileInputScreen.problems(in: utf8)
        guard screened.isEmpty else { throw failure(screened) }
        // The screen has checked the bytes are UTF-8, so decoding cannot repair anything.
        var yaml = text ?? String(decoding: utf8, as: UTF8.self)
        if let problem = yaml.withUTF8({ YAMLExpansionBudget.problem(in: $0) }) { throw failure([problem]) }

        let root: Node?
        do {
            root = try Parser(yaml: yaml, encoding: .utf8).singleRoot()
        } catch {
            throw failure([YAMLDiagnostics.problem(error, in: yaml)])
        }
        guard let root else { throw failure([(1, "file is empty; expected a mapping with dag_id and tasks")]) }

        var reader = DAGFileReader(sourceName: sourceName)
        let spec = reader.read(root)
        let problems = reader.problems + reader.locate(spec.problems())
        guard problems.isEmpty else {
            let ordered = problems.enumerated().sorted { a, b in
                (a.element.line ?? .max, a.offset) < (b.element.line ?? .max, b.offset)
            }
            throw DAGFileError(sourceName: sourceName, problems: ordered.map(\.element))
        }
        return spec
    }

}
