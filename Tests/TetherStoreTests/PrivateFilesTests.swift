import Foundation
import Testing
import TetherStore
import TetherTestSupport

/// State files are the owner's only; one writer per data directory.
@Suite struct PrivateFilesTests {
    @Test func aNewDatabaseAndItsWALAndSHMFilesAreOwnerOnly() throws {
        let scratch = try ScratchDirectory()
        let database = try scratch.open()
        try database.execute("CREATE TABLE t(x); INSERT INTO t VALUES (1)")
        // The connection is open, so the sidecars exist.
        for file in ["test.db", "test.db-wal", "test.db-shm"] {
            #expect(fileMode(scratch.path(file)) == 0o600, "\(file)")
        }
    }

    @Test func anExistingWorldReadableDatabaseLosesGroupAndOtherBits() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path()
        try SQLiteDatabase(.init(path: path)).execute("CREATE TABLE t(x)")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        _ = try SQLiteDatabase(.init(path: path))
        #expect(fileMode(path) == 0o600)
    }

    @Test func aReadOnlyConnectionChangesNoMode() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path()
        try SQLiteDatabase(.init(path: path)).execute("CREATE TABLE t(x)")
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        _ = try SQLiteDatabase(.init(path: path, access: .readOnly))
        #expect(fileMode(path) == 0o640)
    }

    @Test func createDirectoriesMakesMissingOnesOwnerOnlyAndLeavesExistingOnesAlone() throws {
        let scratch = try ScratchDirectory()
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: scratch.url.path)
        try PrivateFiles.createDirectories(scratch.path("a/b"))
        #expect(fileMode(scratch.path("a")) == 0o700)
        #expect(fileMode(scratch.path("a/b")) == 0o700)
        #expect(fileMode(scratch.url.path) == 0o755)
        try PrivateFiles.createDirectories(scratch.path("a/b"))   // exists: fine
    }

    @Test func createExclusivelyWritesAnOwnerOnlyFileAndNeverReplacesOne() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.path("secret")
        try PrivateFiles.createExclusively(path, contents: "first\n")
        #expect(fileMode(path) == 0o600)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "first\n")
        let error = try #require(throws: FileSystemError.self) { try PrivateFiles.createExclusively(path, contents: "second\n") }
        #expect(error.errno == EEXIST)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "first\n")
    }

    @Test func aSecondLockOnADataDirectoryIsRefusedNamingTheHoldersPidUntilTheFirstIsReleased() throws {
        let scratch = try ScratchDirectory()
        var first: DataDirectoryLock? = try DataDirectoryLock(directory: scratch.url.path)
        #expect(fileMode(DataDirectoryLock.path(in: scratch.url.path)) == 0o600)
        let error = try #require(throws: DataDirectoryLockError.self) { try DataDirectoryLock(directory: scratch.url.path) }
        #expect(error == .held(directory: scratch.url.path, pid: getpid()))
        #expect(error.description.contains("pid \(getpid())"))
        _ = first
        first = nil
        // The lock belongs to the open file, and a child another test spawns holds a copy
        // of every descriptor from its fork until its exec closes them (O_CLOEXEC): for that
        // instant the lock outlives `first`. So the second lock may take a few tries.
        var second: DataDirectoryLock?
        let deadline = ContinuousClock.now + .seconds(10)
        while second == nil {
            do {
                second = try DataDirectoryLock(directory: scratch.url.path)
            } catch {
                guard case .held = error, ContinuousClock.now < deadline else { throw error }
                usleep(10_000)
            }
        }
        #expect(second?.directory == scratch.url.path)
    }
}
