import Foundation
import PackagePlugin

/// Writes `BuildInfo.swift` (the git commit the binary was built from) before every build.
/// The file is rewritten only when the commit changes, so it does not force recompiles.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let outDir = context.pluginWorkDirectoryURL.appending(path: "BuildInfo")
        let repo = context.package.directoryURL.path
        let file = outDir.appending(path: "BuildInfo.swift").path
        let script = """
            c=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
            if [ "$c" != unknown ] && [ -n "$(git -C "$1" status --porcelain --untracked-files=no 2>/dev/null)" ]; then c="$c-dirty"; fi
            mkdir -p "$(dirname "$2")"
            printf '/// Filled in at build time by BuildInfoPlugin.\\nenum BuildInfo {\\n    static let gitCommit = "%s"\\n}\\n' "$c" > "$2.tmp"
            if cmp -s "$2.tmp" "$2"; then rm -f "$2.tmp"; else mv "$2.tmp" "$2"; fi
            """
        return [
            .prebuildCommand(
                displayName: "Recording the git commit",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", script, "sh", repo, file],
                outputFilesDirectory: outDir
            ),
        ]
    }
}
