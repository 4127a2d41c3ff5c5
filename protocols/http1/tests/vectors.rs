//! RFC vectors and smuggling regressions, read from `tests/vectors/`. Each file is
//! fed whole, byte by byte and in random splits; the renderings must all match.

mod common;

use common::check_vector;

#[test]
fn rfc9112_2_1_message_format() {
    check_vector("rfc9112/2_1_message_format.txt");
}

#[test]
fn rfc9112_2_2_bare_lf_accepted() {
    check_vector("rfc9112/2_2_bare_lf_accepted.txt");
}

#[test]
fn rfc9112_2_2_bare_lf_rejected() {
    check_vector("rfc9112/2_2_bare_lf_rejected.txt");
}

#[test]
fn rfc9112_2_2_leading_empty_lines() {
    check_vector("rfc9112/2_2_leading_empty_lines.txt");
}

#[test]
fn rfc9112_2_3_unsupported_version() {
    check_vector("rfc9112/2_3_unsupported_version.txt");
}

#[test]
fn rfc9112_3_2_1_origin_form() {
    check_vector("rfc9112/3_2_1_origin_form.txt");
}

#[test]
fn rfc9112_3_2_2_absolute_form() {
    check_vector("rfc9112/3_2_2_absolute_form.txt");
}

#[test]
fn rfc9112_3_2_3_authority_form() {
    check_vector("rfc9112/3_2_3_authority_form.txt");
}

#[test]
fn rfc9112_3_2_4_asterisk_form() {
    check_vector("rfc9112/3_2_4_asterisk_form.txt");
}

#[test]
fn rfc9112_3_2_missing_host() {
    check_vector("rfc9112/3_2_missing_host.txt");
}

#[test]
fn rfc9112_3_2_two_hosts() {
    check_vector("rfc9112/3_2_two_hosts.txt");
}

#[test]
fn rfc9112_3_request_line_double_space() {
    check_vector("rfc9112/3_request_line_double_space.txt");
}

#[test]
fn rfc9112_5_1_field_values_trimmed() {
    check_vector("rfc9112/5_1_field_values_trimmed.txt");
}

#[test]
fn rfc9112_6_3_content_length_body() {
    check_vector("rfc9112/6_3_content_length_body.txt");
}

#[test]
fn rfc9112_6_3_no_framing_no_body() {
    check_vector("rfc9112/6_3_no_framing_no_body.txt");
}

#[test]
fn rfc9112_7_1_chunked_body() {
    check_vector("rfc9112/7_1_chunked_body.txt");
}

#[test]
fn rfc9112_7_1_chunked_data_with_crlf() {
    check_vector("rfc9112/7_1_chunked_data_with_crlf.txt");
}

#[test]
fn rfc9112_7_1_chunked_empty_body() {
    check_vector("rfc9112/7_1_chunked_empty_body.txt");
}

#[test]
fn rfc9112_9_3_http10_persistence() {
    check_vector("rfc9112/9_3_http10_persistence.txt");
}

#[test]
fn rfc9112_9_3_pipeline_depth() {
    check_vector("rfc9112/9_3_pipeline_depth.txt");
}

#[test]
fn rfc9112_9_3_pipelining() {
    check_vector("rfc9112/9_3_pipelining.txt");
}

#[test]
fn rfc9112_9_6_connection_close() {
    check_vector("rfc9112/9_6_connection_close.txt");
}

#[test]
fn rfc9110_10_1_1_expect_continue() {
    check_vector("rfc9110/10_1_1_expect_continue.txt");
}

#[test]
fn rfc9110_10_1_1_expect_other() {
    check_vector("rfc9110/10_1_1_expect_other.txt");
}

#[test]
fn rfc9110_7_8_upgrade_ignored() {
    check_vector("rfc9110/7_8_upgrade_ignored.txt");
}

#[test]
fn rfc6455_4_2_1_websocket_upgrade() {
    check_vector("rfc6455/4_2_1_websocket_upgrade.txt");
}

#[test]
fn rfc7540_3_2_h2c_upgrade() {
    check_vector("rfc7540/3_2_h2c_upgrade.txt");
}

#[test]
fn regress_chunk_bare_lf() {
    check_vector("regress/chunk_bare_lf.txt");
}

#[test]
fn regress_chunk_data_overrun() {
    check_vector("regress/chunk_data_overrun.txt");
}

#[test]
fn regress_chunk_ext_bare_lf() {
    check_vector("regress/chunk_ext_bare_lf.txt");
}

#[test]
fn regress_chunk_size_0x() {
    check_vector("regress/chunk_size_0x.txt");
}

#[test]
fn regress_chunk_size_minus() {
    check_vector("regress/chunk_size_minus.txt");
}

#[test]
fn regress_chunk_size_overflow() {
    check_vector("regress/chunk_size_overflow.txt");
}

#[test]
fn regress_chunk_size_plus() {
    check_vector("regress/chunk_size_plus.txt");
}

#[test]
fn regress_chunk_size_trailing_space() {
    check_vector("regress/chunk_size_trailing_space.txt");
}

#[test]
fn regress_cl_duplicate_differing() {
    check_vector("regress/cl_duplicate_differing.txt");
}

#[test]
fn regress_cl_duplicate_equal() {
    check_vector("regress/cl_duplicate_equal.txt");
}

#[test]
fn regress_cl_empty() {
    check_vector("regress/cl_empty.txt");
}

#[test]
fn regress_cl_hex() {
    check_vector("regress/cl_hex.txt");
}

#[test]
fn regress_cl_inner_space() {
    check_vector("regress/cl_inner_space.txt");
}

#[test]
fn regress_cl_list() {
    check_vector("regress/cl_list.txt");
}

#[test]
fn regress_cl_minus_sign() {
    check_vector("regress/cl_minus_sign.txt");
}

#[test]
fn regress_cl_overflow() {
    check_vector("regress/cl_overflow.txt");
}

#[test]
fn regress_cl_plus_sign() {
    check_vector("regress/cl_plus_sign.txt");
}

#[test]
fn regress_cl_surrounding_ows_ok() {
    check_vector("regress/cl_surrounding_ows_ok.txt");
}

#[test]
fn regress_cl_te() {
    check_vector("regress/cl_te.txt");
}

#[test]
fn regress_header_bare_cr() {
    check_vector("regress/header_bare_cr.txt");
}

#[test]
fn regress_header_no_colon() {
    check_vector("regress/header_no_colon.txt");
}

#[test]
fn regress_header_nul() {
    check_vector("regress/header_nul.txt");
}

#[test]
fn regress_header_obs_fold() {
    check_vector("regress/header_obs_fold.txt");
}

#[test]
fn regress_host_invalid() {
    check_vector("regress/host_invalid.txt");
}

#[test]
fn regress_request_line_space_in_target() {
    check_vector("regress/request_line_space_in_target.txt");
}

#[test]
fn regress_smuggled_after_cl_body() {
    check_vector("regress/smuggled_after_cl_body.txt");
}

#[test]
fn regress_te_chunked_gzip() {
    check_vector("regress/te_chunked_gzip.txt");
}

#[test]
fn regress_te_chunked_twice() {
    check_vector("regress/te_chunked_twice.txt");
}

#[test]
fn regress_te_cl() {
    check_vector("regress/te_cl.txt");
}

#[test]
fn regress_te_gzip_chunked() {
    check_vector("regress/te_gzip_chunked.txt");
}

#[test]
fn regress_te_http10() {
    check_vector("regress/te_http10.txt");
}

#[test]
fn regress_te_obs_fold() {
    check_vector("regress/te_obs_fold.txt");
}

#[test]
fn regress_te_space_before_colon() {
    check_vector("regress/te_space_before_colon.txt");
}

#[test]
fn regress_te_tab_ows_ok() {
    check_vector("regress/te_tab_ows_ok.txt");
}

#[test]
fn regress_te_te_two_fields() {
    check_vector("regress/te_te_two_fields.txt");
}

#[test]
fn regress_te_te_xchunked() {
    check_vector("regress/te_te_xchunked.txt");
}

#[test]
fn regress_te_vertical_tab() {
    check_vector("regress/te_vertical_tab.txt");
}

/// No vector file is left without its named test above.
#[test]
fn every_vector_file_has_a_test() {
    let src = include_str!("vectors.rs");
    for dir in ["rfc9112", "rfc9110", "rfc6455", "rfc7540", "regress"] {
        for name in common::list(dir) {
            assert!(src.contains(&format!("\"{name}\"")), "no test for {name}");
        }
    }
}
