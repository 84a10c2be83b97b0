#pragma once
/// @file
/// The schedule layer of mixq: training schedules built on nn (namespace mixq::schedule).
///
/// - Training loops (schedule/training.hpp): train_supervised() (float, QAT fine-tuning), evaluate_accuracy().
/// - LIMPQ (schedule/limpq.hpp): train_indicators(), extract_indicators(), write_limpq_indicators(),
///   limpq_search(), the baselines hutchinson_traces() + hawq_search() and random_indicators().
/// - LIMPQ results (schedule/limpq_report.hpp): LimpqReport, limpq_report_json().

#include "mixq/error.hpp"
#include "mixq/schedule/training.hpp"
#include "mixq/schedule/limpq.hpp"
#include "mixq/schedule/limpq_report.hpp"
