use std::time::Duration;

use super::*;

fn summary(not_before: i64, not_after: i64) -> CertSummary {
    CertSummary {
        subject: "CN=test".into(),
        not_before,
        not_after,
        not_after_text: "then".into(),
    }
}

fn at(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs as u64)
}

#[test]
fn validity_boundaries() {
    let day = SECS_PER_DAY;
    let cert = summary(1000 * day, 2000 * day);
    assert_eq!(cert.validity(at(1000 * day - 1)), Validity::NotYetValid);
    assert_eq!(
        cert.validity(at(1000 * day)),
        Validity::Valid { days_left: 1000 }
    );
    // 30 whole days left is still fine; 29 days and some hours is a warning.
    assert_eq!(
        cert.validity(at(1970 * day)),
        Validity::Valid { days_left: 30 }
    );
    assert_eq!(
        cert.validity(at(1970 * day + 1)),
        Validity::ExpiringSoon { days_left: 29 }
    );
    assert_eq!(
        cert.validity(at(2000 * day)),
        Validity::ExpiringSoon { days_left: 0 }
    );
    assert_eq!(cert.validity(at(2000 * day + 1)), Validity::Expired);
    assert_eq!(
        cert.describe(at(2000 * day + 1)),
        "CN=test, EXPIRED on then"
    );
    assert_eq!(
        cert.describe(at(1000 * day)),
        "CN=test, expires then (in 1000 days)"
    );
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = read_certs(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );

    let text = dir.path().join("text.pem");
    fs::write(&text, "hello\n").unwrap();
    assert_eq!(
        read_certs(&text).unwrap_err().to_string(),
        format!(
            "{}: no PEM certificate (BEGIN CERTIFICATE) found",
            text.display()
        )
    );
    assert_eq!(
        read_key(&text).unwrap_err().to_string(),
        format!("{}: no PEM private key found", text.display())
    );

    let bogus = dir.path().join("bogus.pem");
    fs::write(
        &bogus,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = read_certs(&bogus).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: not an X.509 certificate", bogus.display())),
        "{err}"
    );
}
