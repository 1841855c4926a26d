"""AWS load balancer and S3 access logs: space-separated lines with quoted fields, written
as format strings for the one compiler.

AWS appends fields to these formats over the years and documents that more may come, so the
fields added after launch are a `tail`: each may be missing and unknown ones may follow.
Field names follow AWS's documentation; the ones without a LogRecord home stay in `fields`.
"""
from __future__ import annotations

from .registry import register_format_string

register_format_string(
    "alb", "nginx",
    '$type $time_iso8601 $elb $remote_addr:$client_port $target $request_processing_time '
    '$target_processing_time $response_processing_time $status $target_status_code '
    '$received_bytes $body_bytes_sent "$request" "$http_user_agent" $ssl_cipher $ssl_protocol '
    '$target_group_arn "$trace_id"',
    "AWS Application Load Balancer access log (the request holds the full URL)",
    tail=' "$domain_name" "$chosen_cert_arn" $matched_rule_priority $request_creation_time '
         '"$actions_executed" "$redirect_url" "$error_reason" "$target_port_list" '
         '"$target_status_code_list" "$classification" "$classification_reason" $conn_trace_id')

register_format_string(
    "elb", "nginx",
    '$time_iso8601 $elb $remote_addr:$client_port $backend $request_processing_time '
    '$backend_processing_time $response_processing_time $status $backend_status_code '
    '$received_bytes $body_bytes_sent "$request"',
    "AWS Classic Load Balancer (ELB) access log",
    tail=' "$http_user_agent" $ssl_cipher $ssl_protocol')

register_format_string(
    "s3", "nginx",
    '$bucket_owner $bucket [$time_local] $remote_addr $requester $request_id $operation $key '
    '"$request" $status $error_code $body_bytes_sent $object_size $total_time $turn_around_time '
    '"$http_referer" "$http_user_agent"',
    "Amazon S3 server access log",
    tail=' $version_id $host_id $signature_version $cipher_suite $authentication_type $host '
         '$tls_version $access_point_arn $acl_required $source_region')
