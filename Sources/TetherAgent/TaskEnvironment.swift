/// The environment a task process gets from the agent.
public enum TaskEnvironment {
    /// `TETHER_PARAM_<NAME>` for a parameter: the name upper-cased, every character
    /// outside [A-Z0-9_] replaced by `_`, so any parameter name makes a valid variable.
    public static func variableName(forParam name: String) -> String {
        let mapped = name.uppercased().unicodeScalars.map { scalar -> Character in
            switch scalar {
            case "A"..."Z", "0"..."9", "_": return Character(scalar)
            default: return "_"
            }
        }
        return "TETHER_PARAM_" + String(mapped)
    }
}
