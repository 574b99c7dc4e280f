/// A `grpc-timeout` value: 1 to 8 ASCII digits and a unit letter (gRPC PROTOCOL-HTTP2,
/// *Timeout*), e.g. `1S`, `100m`, `99999999n`. The time the client allows the call, relative
/// to when the server receives the request headers.
public struct GRPCTimeout: Hashable, Sendable, CustomStringConvertible {
    /// A *TimeoutUnit*; the raw value is its letter on the wire.
    public enum Unit: UInt8, CaseIterable, Hashable, Sendable {
        /// `H`
        case hours = 0x48
        /// `M`
        case minutes = 0x4D
        /// `S`
        case seconds = 0x53
        /// `m`
        case milliseconds = 0x6D
        /// `u`
        case microseconds = 0x75
        /// `n`
        case nanoseconds = 0x6E

        /// The unit as a `Duration`.
        public var duration: Duration {
            switch self {
            case .hours: .seconds(3600)
            case .minutes: .seconds(60)
            case .seconds: .seconds(1)
            case .milliseconds: .milliseconds(1)
            case .microseconds: .microseconds(1)
            case .nanoseconds: .nanoseconds(1)
            }
        }
    }

    /// The largest *TimeoutValue*: eight digits.
    public static let maxValue = 99_999_999

    /// The longest timeout that can be sent, `99999999H`.
    private static let maxDuration = Duration.seconds(Int64(maxValue) * 3600)

    /// The number of units, 0 ... ``maxValue``.
    public let value: Int
    /// The unit of ``value``.
    public let unit: Unit

    /// A timeout of `value` units; `nil` unless `value` is in 0 ... ``maxValue``.
    public init?(value: Int, unit: Unit) {
        guard (0...Self.maxValue).contains(value) else { return nil }
        self.value = value
        self.unit = unit
    }

    /// Parses a `grpc-timeout` header value. Strict: no sign, no spaces, no 9th digit.
    ///
    /// `0` is accepted although the spec says *positive*: a client that sends it means
    /// "already expired", and answering DEADLINE_EXCEEDED serves it better than INTERNAL.
    /// - Throws: ``GRPCTimeoutParseError`` saying what is wrong.
    public init(parsing text: String) throws(GRPCTimeoutParseError) {
        let utf8 = Array(text.utf8)
        guard let last = utf8.last else { throw .missingDigits }
        guard let unit = Unit(rawValue: last) else { throw .invalidUnit }
        let digits = utf8.dropLast()
        guard !digits.isEmpty else { throw .missingDigits }
        guard digits.count <= 8 else { throw .tooManyDigits }
        var value = 0
        for byte in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { throw .invalidDigit }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        self.value = value
        self.unit = unit
    }

    /// The finest-unit timeout that is at least `duration` and fits in 8 digits: a positive
    /// duration is rounded UP to the unit, so a deadline is never shortened (in particular
    /// never to 0). Saturating: a duration of zero or less becomes `1n`, the least positive
    /// timeout (check for an expired deadline before sending); one above 99999999 hours
    /// (about 11,400 years) becomes `99999999H`.
    public init(rounding duration: Duration) {
        // Compare first: `components` traps beyond Int64.max seconds, which a Duration can hold.
        guard duration < Self.maxDuration else {
            self.value = Self.maxValue
            self.unit = .hours
            return
        }
        let (seconds, attoseconds) = duration.components
        guard seconds > 0 || (seconds == 0 && attoseconds > 0) else {
            self.value = 1
            self.unit = .nanoseconds
            return
        }
        // Sub-second units: value = seconds * perSecond + ceil(attoseconds / attosecondsPerUnit).
        let subsecond: [(Unit, Int64, Int64)] = [
            (.nanoseconds, 1_000_000_000, 1_000_000_000),
            (.microseconds, 1_000_000, 1_000_000_000_000),
            (.milliseconds, 1_000, 1_000_000_000_000_000),
        ]
        for (unit, perSecond, attosecondsPerUnit) in subsecond where seconds <= Int64(Self.maxValue) / perSecond {
            let value = seconds * perSecond + (attoseconds + attosecondsPerUnit - 1) / attosecondsPerUnit
            if value <= Int64(Self.maxValue) {
                self.value = Int(value)
                self.unit = unit
                return
            }
        }
        // Whole units of seconds: value = ceil((seconds + fraction) / secondsPerUnit).
        for (unit, secondsPerUnit) in [(Unit.seconds, Int64(1)), (.minutes, 60), (.hours, 3600)] {
            let (quotient, remainder) = seconds.quotientAndRemainder(dividingBy: secondsPerUnit)
            let value = quotient + (remainder > 0 || attoseconds > 0 ? 1 : 0)
            if value <= Int64(Self.maxValue) {
                self.value = Int(value)
                self.unit = unit
                return
            }
        }
        self.value = Self.maxValue
        self.unit = .hours
    }

    /// The exact duration, `value` × `unit` (at most 99999999 hours, so never overflows).
    public var duration: Duration { unit.duration * value }

    /// The header value, e.g. `100m`.
    public var wireValue: String {
        String(value) + String(decoding: CollectionOfOne(unit.rawValue), as: UTF8.self)
    }

    /// Same as ``wireValue``.
    public var description: String { wireValue }
}

/// Why a `grpc-timeout` value was rejected; a server answers such a request with INTERNAL.
public enum GRPCTimeoutParseError: Error, Hashable, Sendable {
    /// Empty, or a unit with no digits before it.
    case missingDigits
    /// More than 8 digits.
    case tooManyDigits
    /// Something other than `0`-`9` before the unit.
    case invalidDigit
    /// The last character is not one of `H M S m u n`.
    case invalidUnit
}
