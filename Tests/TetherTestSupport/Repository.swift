public import Foundation

/// Paths inside the checkout, found from this source file's location so tests work
/// from any working directory.
public enum Repository {
    /// The repository root (the directory holding Package.swift).
    public static let root: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url
            }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    /// The `tether` binary of the current build (`swift build` puts it beside the tests).
    public static var tetherBinary: URL { binary("tether") }

    /// A product of the current build, e.g. "tether-echo".
    public static func binary(_ name: String) -> URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent(name)
    }

    /// The project's Python, from the venv that Scripts/bootstrap makes.
    public static var python: URL { root.appendingPathComponent(".venv/bin/python") }
}

/// What a finished child process printed and how it ended.
public struct ProcessResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
}

public enum ProcessRunError: Error, CustomStringConvertible {
    case missingExecutable(String)
    public var description: String {
        switch self {
        case .missingExecutable(let path): return "\(path) not found: run Scripts/bootstrap first"
        }
    }
}

/// Runs `executable` to completion, reading its output concurrently so a full
/// pipe cannot stall it. `environment` entries are added to (or replace) this
/// process's environment; a nil value removes the variable.
public func runProcess(_ executable: URL, _ arguments: [String], cwd: URL = Repository.root,
                       environment: [String: String?] = [:]) throws -> ProcessResult {
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw ProcessRunError.missingExecutable(executable.path)
    }
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = cwd
    if !environment.isEmpty {
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
    }
    let out = Pipe.closingOnExec(), err = Pipe.closingOnExec()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try SpawnGuard.run { try process.run() }
    let group = DispatchGroup()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

extension Pipe {
    /// A pipe whose two descriptors close on exec. Foundation's pipes do not, so a child
    /// another test starts at the same moment would inherit this pipe's write end and keep
    /// it open for its whole life: a reader waiting for EOF here would wait as long. The
    /// child this pipe is for still gets it, as its stdin/stdout/stderr (dup2 clears the flag).
    public static func closingOnExec() -> Pipe {
        let pipe = Pipe()
        for fd in [pipe.fileHandleForReading.fileDescriptor, pipe.fileHandleForWriting.fileDescriptor] {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        return pipe
    }
}
