#pragma once
/// @file
/// The schedule layer of mixq: training schedules built on nn (namespace mixq::schedule).
///
/// - Training loops (schedule/training.hpp): train_supervised() (float, QAT fine-tuning), evaluate_accuracy().
/// - LIMPQ (schedule/limpq.hpp): train_indicators(), extract_indicators(), write_limpq_indicators(),
///   limpq_search(), the baselines hutchinson_traces() + hawq_search() and random_indicators().
/// - LIMPQ results (schedule/limpq_report.hpp): LimpqReport, limpq_report_json().
/// - One-shot weight coupling: Supernet (schedule/supernet.hpp), BitWidthScheduler (bit_width_scheduler.hpp),
///   OneShotTrainer (oneshot.hpp), evaluate_policy() and the greedy / exact / LIMPQ searches (oneshot_search.hpp),
///   OneShotRunReport and its JSON (oneshot_report.hpp).

#include "mixq/error.hpp"
#include "mixq/schedule/training.hpp"
#include "mixq/schedule/limpq.hpp"
#include "mixq/schedule/limpq_report.hpp"
#include "mixq/schedule/supernet.hpp"
#include "mixq/schedule/bit_width_scheduler.hpp"
#include "mixq/schedule/oneshot.hpp"
#include "mixq/schedule/oneshot_search.hpp"
#include "mixq/schedule/oneshot_report.hpp"
#include "mixq/schedule/width_study.hpp"
