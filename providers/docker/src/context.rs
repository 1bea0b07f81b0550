//! A build context folder: its files less what `.dockerignore` excludes,
//! their keyed digest (the image's `claw.dev/context-hash`) and the tar
//! sent to the Engine. Both see exactly the same files.
//!
//! `.dockerignore` follows Docker's rules (moby's `patternmatcher`, as the
//! docker CLI applies it), each pattern matched with `globset`:
//! - one pattern a line; blank lines and lines starting with `#` are
//!   skipped; each line is trimmed; `!` makes an exception;
//! - patterns are relative to the context root, cleaned like Go's
//!   `filepath.Clean` (`/foo`, `./foo` and `foo/` all mean `foo`); unlike
//!   `.gitignore`, `foo` matches only at the root (write `**/foo` for any depth);
//! - `*` and `?` stop at `/`, `**` spans folders, `[...]` is a class (`[^a]`
//!   or `[!a]` negated), `\` escapes;
//! - a pattern matches a path when it matches the path or one of its
//!   parent folders (`node_modules` excludes all under it); the last pattern
//!   that matches decides, so a later `!` re-includes;
//! - the Dockerfile and `.dockerignore` itself are always sent (as the
//!   docker CLI does), though a pattern names them.

use claw_provider::Ctx;
use globset::{GlobBuilder, GlobMatcher};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The file that lists what a build context leaves out.
pub const IGNORE_FILE: &str = ".dockerignore";

/// The rules of one `.dockerignore`.
#[derive(Default, Debug)]
pub struct Ignore {
    rules: Vec<(GlobMatcher, bool)>,
    /// Always sent: the Dockerfile and `.dockerignore`.
    keep: Vec<String>,
}

/// Go's `filepath.Clean` of a relative, `/`-separated pattern, without a
/// leading `/`.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            x => out.push(x),
        }
    }
    out.join("/")
}

impl Ignore {
    /// Parses the text of a `.dockerignore`; `dockerfile` is the Dockerfile's
    /// path inside the context. An invalid pattern is an error naming its line.
    pub fn parse(text: &str, dockerfile: &str) -> Result<Ignore, String> {
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (negate, pat) = match l.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, l),
            };
            if pat.is_empty() {
                return Err(format!(
                    "{IGNORE_FILE} line {}: `!` must be followed by a pattern",
                    n + 1
                ));
            }
            let pat = clean(pat).replace("[^", "[!");
            if pat.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&pat)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("{IGNORE_FILE} line {}: `{line}`: {e}", n + 1))?;
            rules.push((glob.compile_matcher(), negate));
        }
        Ok(Ignore {
            rules,
            keep: vec![clean(dockerfile), IGNORE_FILE.to_string()],
        })
    }

    /// The rules of the context folder `dir` (none without a `.dockerignore`).
    pub fn load(dir: &Path, dockerfile: &str) -> std::io::Result<Ignore> {
        match std::fs::read_to_string(dir.join(IGNORE_FILE)) {
            Ok(t) => Ignore::parse(&t, dockerfile)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ignore {
                rules: Vec::new(),
                keep: Vec::new(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Whether `rel` (relative to the context root, `/`-separated) is left out.
    pub fn excludes(&self, rel: &str) -> bool {
        if self.rules.is_empty() || self.keep.iter().any(|k| k == rel) {
            return false;
        }
        let mut excluded = false;
        for (glob, negate) in &self.rules {
            let hit = glob.is_match(rel)
                || rel
                    .match_indices('/')
                    .any(|(i, _)| glob.is_match(&rel[..i]));
            if hit {
                excluded = !negate;
            }
        }
        excluded
    }

    /// Whether a folder that is excluded may still hold a file that is not
    /// (an exception, or a kept file below it): then the walk goes in.
    fn may_reinclude(&self, dir: &str) -> bool {
        self.rules.iter().any(|(_, negate)| *negate)
            || self.keep.iter().any(|k| k.starts_with(&format!("{dir}/")))
    }
}

/// Relative paths (with `/`) of every file and symlink under `dir` that
/// `ignore` does not exclude, sorted.
pub fn files(dir: &Path, ignore: &Ignore) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    walk(dir, dir, ignore, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(root: &Path, dir: &Path, ignore: &Ignore, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p
            .strip_prefix(root)
            .unwrap_or(&p)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        if e.file_type()?.is_dir() {
            if !ignore.excludes(&rel) || ignore.may_reinclude(&rel) {
                walk(root, &p, ignore, out)?;
            }
        } else if !ignore.excludes(&rel) {
            out.push(rel);
        }
    }
    Ok(())
}

/// The keyed digest ([`Ctx::digest`]) of a build context: every file sent
/// (its relative path, executable bit and bytes, in path order) streamed
/// through SHA-256, whose result is then keyed (never stored plain).
/// Symlinks hash their target.
pub fn hash(dir: &Path, dockerfile: &str, ctx: &Ctx) -> std::io::Result<String> {
    let ignore = Ignore::load(dir, dockerfile)?;
    let mut h = Sha256::new();
    for rel in files(dir, &ignore)? {
        let p = dir.join(&rel);
        let meta = std::fs::symlink_metadata(&p)?;
        h.update(rel.as_bytes());
        h.update([0u8]);
        if meta.file_type().is_symlink() {
            h.update(b"link:");
            h.update(std::fs::read_link(&p)?.to_string_lossy().as_bytes());
        } else {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                h.update(format!("{:o}", meta.permissions().mode() & 0o111).as_bytes());
            }
            h.update([0u8]);
            h.update(std::fs::read(&p)?);
        }
        h.update([0u8]);
    }
    Ok(ctx.digest(&h.finalize()))
}

/// The build context as a tar archive (in memory): the same files as [`hash`].
pub fn tar(dir: &Path, dockerfile: &str) -> std::io::Result<Vec<u8>> {
    let ignore = Ignore::load(dir, dockerfile)?;
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    for rel in files(dir, &ignore)? {
        b.append_path_with_name(dir.join(&rel), &rel)?;
    }
    b.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_docker_rules() {
        let text = "# build output\n\n/target\n*.log\n!keep.log\nnode_modules/\n**/secret.env\ndocs/*.md\n!docs/README.md\n./a/../tmp\n[^x]y\nDockerfile\n.dockerignore\n";
        let i = Ignore::parse(text, "Dockerfile").unwrap();
        for (path, out) in [
            ("target", true),
            ("target/debug/app", true),
            ("src/target", false), // root only, unlike .gitignore
            ("a.log", true),
            ("sub/a.log", false), // `*` stops at `/`
            ("keep.log", false),
            ("node_modules/x/y.js", true),
            ("secret.env", true),
            ("deep/er/secret.env", true),
            ("docs/guide.md", true),
            ("docs/README.md", false),
            ("docs/sub/x.md", false),
            ("tmp/file", true),
            ("ay", true),
            ("xy", false),
            ("Dockerfile", false), // always sent
            (".dockerignore", false),
            ("src/main.rs", false),
        ] {
            assert_eq!(i.excludes(path), out, "{path}");
        }
        assert!(Ignore::parse("!\n", "Dockerfile")
            .unwrap_err()
            .contains("line 1"));
        assert!(Ignore::parse("ok\n[z-a\n", "Dockerfile")
            .unwrap_err()
            .contains("line 2"));
    }

    #[test]
    fn excluded_files_are_neither_hashed_nor_sent() {
        let d = tempfile::tempdir().unwrap();
        let w = |p: &str, c: &str| {
            let f = d.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, c).unwrap();
        };
        w("Dockerfile", "FROM scratch\n");
        w("app/main.sh", "echo hi\n");
        let ctx = Ctx::for_tests("t", d.path());
        let before = hash(d.path(), "Dockerfile", &ctx).unwrap();
        w(".dockerignore", "cache\n*.tmp\n");
        let with_ignore = hash(d.path(), "Dockerfile", &ctx).unwrap();
        assert_ne!(before, with_ignore, ".dockerignore itself is sent");
        // Excluded files change nothing.
        w("cache/big.bin", "1");
        w("x.tmp", "2");
        assert_eq!(hash(d.path(), "Dockerfile", &ctx).unwrap(), with_ignore);
        w("cache/big.bin", "changed");
        assert_eq!(hash(d.path(), "Dockerfile", &ctx).unwrap(), with_ignore);
        // Included ones do.
        w("app/main.sh", "echo bye\n");
        assert_ne!(hash(d.path(), "Dockerfile", &ctx).unwrap(), with_ignore);
        // The tar holds exactly the files hashed.
        let t = tar(d.path(), "Dockerfile").unwrap();
        let mut names: Vec<String> = tar::Archive::new(&t[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![".dockerignore", "Dockerfile", "app/main.sh"]);
        // An invalid pattern is an error.
        w(".dockerignore", "[z-a\n");
        let e = hash(d.path(), "Dockerfile", &ctx).unwrap_err();
        assert!(e.to_string().contains(".dockerignore line 1"), "{e}");
    }

    #[test]
    fn context_hash_follows_content() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let ctx = Ctx::for_tests("t", d.path());
        let h = |p: &Path| hash(p, "Dockerfile", &ctx).unwrap();
        let a = h(d.path());
        assert_eq!(a, h(d.path()));
        assert!(a.starts_with(claw_provider::digest::KEYED_PREFIX), "{a}");
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/x"), "1").unwrap();
        let b = h(d.path());
        assert_ne!(a, b);
        std::fs::write(d.path().join("sub/x"), "2").unwrap();
        assert_ne!(b, h(d.path()));
        assert!(tar(d.path(), "Dockerfile").unwrap().len() >= 1024);
    }
}
