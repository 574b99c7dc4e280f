/// The dashboard's files, compiled into the binary from `Dashboard/Assets/` (SwiftPM
/// resources embedded in code: no bundle to find at run time, no build step, nothing
/// fetched from elsewhere).
enum DashboardAssets {
    struct Asset: Sendable {
        let bytes: [UInt8]
        let contentType: String
    }

    /// The shell every signed-in page is drawn in by `dashboard.js`.
    static var appPage: [UInt8] { PackageResources.index_html }
    static var loginPage: [UInt8] { PackageResources.login_html }

    /// A file under `/ui/assets/`, by name.
    static func named(_ name: String) -> Asset? {
        switch name {
        case "dashboard.js": Asset(bytes: PackageResources.dashboard_js, contentType: "text/javascript; charset=utf-8")
        case "login.js": Asset(bytes: PackageResources.login_js, contentType: "text/javascript; charset=utf-8")
        case "dashboard.css": Asset(bytes: PackageResources.dashboard_css, contentType: "text/css; charset=utf-8")
        case "favicon.svg": Asset(bytes: PackageResources.favicon_svg, contentType: "image/svg+xml")
        default: nil
        }
    }
}
