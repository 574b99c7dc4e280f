/// A proto3 enum mirrored as a Swift enum whose raw values are the wire numbers.
///
/// proto3 enums are open: a peer built from a newer `.proto` may send a number
/// this build does not know. Such a number decodes as the zero (`UNSPECIFIED`)
/// case rather than failing the whole message.
public protocol WireEnum: RawRepresentable, CaseIterable, Hashable, Sendable where RawValue == Int32 {}

extension WireEnum {
    init(wireValue: Int32) {
        self = Self(rawValue: wireValue) ?? Self(rawValue: 0)!
    }
}
