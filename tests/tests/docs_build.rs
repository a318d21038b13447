//! The operator's book in `docs/` builds, with the same library `mdbook build`
//! uses: a chapter missing from disk, a malformed SUMMARY.md or a broken
//! book.toml fails the suite (book.toml sets `create-missing = false`).
//! Links and the commands the book shows are checked by `cli/tests/docs.rs`.

#[test]
fn the_book_builds() {
    let docs = gateway_testkit::repo_root().join("docs");
    let out = tempfile::tempdir().expect("temp dir");
    let mut book = mdbook_driver::MDBook::load(&docs).expect("docs/book.toml and SUMMARY.md load");
    book.config.build.build_dir = out.path().to_path_buf();
    book.build().expect("the book builds");
    for page in [
        "index.html",
        "configuration.html",
        "threat-model.html",
        "deployment/compose.html",
    ] {
        let html = std::fs::read_to_string(out.path().join(page))
            .unwrap_or_else(|e| panic!("{page} was not rendered: {e}"));
        assert!(html.contains("<main>"), "{page} has no content");
    }
}
