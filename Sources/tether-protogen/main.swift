import Foundation

/// tether-protogen DESCRIPTOR_SET OUT_DIR
///
/// Reads a FileDescriptorSet (`protoc-c --descriptor_set_out=DESCRIPTOR_SET
/// --include_source_info`) and writes TetherWire's Swift for it into OUT_DIR: one
/// `NAME.pb.swift` per .proto (its path with `/` as `_`), `WireRegistry.pb.swift` and
/// `WireFileDescriptors.pb.swift` (each file's descriptor, for server reflection).
/// Run by Scripts/generate-protos; see `SwiftEmitter` for the mapping.

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("tether-protogen: \(message)\n".utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count == 3 else { fail("usage: tether-protogen DESCRIPTOR_SET OUT_DIR") }
do {
    let set = try Data(contentsOf: URL(fileURLWithPath: arguments[1]))
    let files = try decodeFileDescriptorSet([UInt8](set)).sorted { $0.name < $1.name }
    let emitter = try SwiftEmitter(files: files)
    var packages = Set<String>()
    for file in files {
        let base = file.name.dropLast(file.name.hasSuffix(".proto") ? 6 : 0).split(separator: "/").joined(separator: "_")
        let source = try emitter.source(for: file, declaresNamespace: packages.insert(file.package).inserted)
        try source.write(toFile: "\(arguments[2])/\(base).pb.swift", atomically: true, encoding: .utf8)
    }
    try emitter.registrySource(files: files).write(toFile: "\(arguments[2])/WireRegistry.pb.swift", atomically: true, encoding: .utf8)
    try FileDescriptorEmitter.source(files: files)
        .write(toFile: "\(arguments[2])/WireFileDescriptors.pb.swift", atomically: true, encoding: .utf8)
} catch {
    fail("\(error)")
}
