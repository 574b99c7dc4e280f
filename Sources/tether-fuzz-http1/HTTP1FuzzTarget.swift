import H2

// HTTP/1.1 request parsing under libFuzzer. `Scripts/fuzz http1 SECONDS` builds this target
// with `-sanitize=fuzzer,address -D FUZZING` and runs it; built without those flags (as
// `swift build` does) it replays the files named on its command line instead.

/// One input through `HTTP1RequestParser` as an `HTTP1Connection` drives it: fed in two
/// pieces (split where the first byte says, as reads split a stream), each request taken
/// and the parse resumed on the bytes behind it, until the input ends or the parser fails.
/// Small limits, so the size checks are reached. Anything but a request within the limits or
/// a failure with one of the statuses we answer traps, which libFuzzer reports as a crash.
func checkHTTP1(_ input: [UInt8]) {
    var limits = HTTPConfiguration()
    limits.maxHeadBytes = 1024
    limits.maxBodyBytes = 512
    let parser = HTTP1RequestParser(limits: limits)
    let split = input.isEmpty ? 0 : Int(input[0]) % (input.count + 1)
    var pending: [ArraySlice<UInt8>] = [input[..<split], input[split...]]
    var requests = 0
    while !pending.isEmpty {
        let piece = pending.removeFirst()
        let progress = Array(piece).withUnsafeBytes { parser.parse($0) }
        switch progress {
        case .needMore:
            continue
        case .request(let request, let consumed):
            requests += 1
            precondition(consumed <= piece.count, "consumed more than it was given")
            precondition(request.body.count <= limits.maxBodyBytes, "a body over the limit was accepted")
            precondition(!request.method.isEmpty, "a request without a method")
            precondition(requests <= input.count, "more requests than input bytes")
            if consumed < piece.count { pending.insert(piece[(piece.startIndex + consumed)...], at: 0) }
        case .failed(let error):
            precondition([400, 413, 431, 501, 505].contains(error.status), "unexpected status \(error.status)")
            precondition(!error.message.isEmpty, "a failure without a message")
            return
        }
    }
}

#if FUZZING
/// libFuzzer's entry point for one input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP1(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    checkHTTP1(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
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
@_cdecl("tether_fuzz_http1_main")
public func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in fuzzHTTP1(data, size) }
}
#else
import Foundation

@main
enum HTTP1Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else { fatalError("cannot read \(path)") }
            checkHTTP1(Array(data))
            print("ok \(path)")
        }
    }
}
#endif
