#!/usr/bin/env node
// cfn-validate.js - validates CloudFormation templates with cfn-lint (the JavaScript
// validator, npm "cfn-lint": resource types, properties, required properties, value types,
// intrinsic functions, Ref/GetAtt targets, parameters, conditions), fed the CloudFormation
// resource specification that @aws-cdk/cfnspec bundles, because the one shipped inside
// cfn-lint 1.9.7 predates API Gateway HTTP APIs and VPC links.
// Usage: node cfn-validate.js TEMPLATE... ; exit 0 if every template is valid, 1 otherwise.
'use strict';

const cfnspec = require('@aws-cdk/cfnspec');
const awsData = require('cfn-lint/lib/awsData');
const api = require('cfn-lint/lib/api');

function useCurrentSpecification() {
  const spec = cfnspec.specification();
  // Per type, the current definition replaces the old one (a property AWS removed must not
  // stay valid); types only the old file knows are kept.
  Object.assign(awsData.awsResources.ResourceTypes, spec.ResourceTypes);
  Object.assign(awsData.awsResources.PropertyTypes, spec.PropertyTypes);
  return spec.ResourceSpecificationVersion;
}

function main(files) {
  if (files.length === 0) {
    process.stderr.write('usage: cfn-validate.js TEMPLATE...\n');
    return 2;
  }
  const version = useCurrentSpecification();
  let failed = 0;
  for (const file of files) {
    let result;
    try {
      result = api.validateFile(file, { guessParameters: undefined });
    } catch (e) {
      console.log(`${file}: cannot parse: ${e.message}`);
      failed++;
      continue;
    }
    const crit = result.errors.crit || [];
    const warn = result.errors.warn || [];
    for (const e of crit) console.log(`${file}: error: ${e.resource}: ${e.message}`);
    for (const e of warn) console.log(`${file}: warning: ${e.resource}: ${e.message}`);
    const ok = result.templateValid && crit.length === 0 && warn.length === 0;
    console.log(`${file}: ${ok ? 'valid' : 'INVALID'} (CloudFormation resource specification ${version})`);
    if (!ok) failed++;
  }
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
