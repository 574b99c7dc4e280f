internal import CProtobufC
internal import TetherProtoC

/// The protobuf-c runtime the codec runs on.
public enum WireLibrary {
    /// libprotobuf-c's version as loaded at run time, e.g. "1.4.1".
    public static var protobufCVersion: String { String(cString: protobuf_c_version()) }
}
