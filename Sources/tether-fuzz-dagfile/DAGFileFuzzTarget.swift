import TetherDAGFile

// The DAG file reader under libFuzzer. `Scripts/fuzz dagfile SECONDS` builds this target
// with `-sanitize=fuzzer,address -D FUZZING` and runs it; built without those flags (as
// `swift build` does) it replays the files named on its command line instead, so a crash
// input can be rerun under the debugger.

/// One input through `DAGFile.parse`: it must return a valid spec or explain itself.
/// Anything else traps, which libFuzzer reports as a crash with the input saved.
func checkDAGFile(_ bytes: [UInt8]) {
    do {
        let spec = try DAGFile.parse(bytes: bytes, sourceName: "fuzz.yaml")
        precondition(spec.problems().isEmpty, "accepted an invalid spec")
    } catch {
        precondition(!error.problems.isEmpty, "rejected without a problem")
        precondition(error.problems.allSatisfy { !$0.message.isEmpty }, "a problem without a message")
    }
}

#if FUZZING
/// libFuzzer's entry point for one input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDAGFile(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    checkDAGFile(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

/// libFuzzer's driver (its own `main`, callable), from the libFuzzer `-sanitize=fuzzer` links.
@_extern(c, "LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// SwiftPM links an executable's `main` to this symbol, so libFuzzer's own `main` is not
/// used: hand the command line to its driver.
@_cdecl("tether_fuzz_dagfile_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in fuzzDAGFile(data, size) }
}
#else
import Foundation

@main
enum DAGFileReplay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else { fatalError("cannot read \(path)") }
            checkDAGFile(Array(data))
            print("ok \(path)")
        }
    }
}
#endif
